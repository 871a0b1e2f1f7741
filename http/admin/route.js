// Where the panel is: the URL's hash names the section, the item and the query, e.g.
// `#/users/0190…?cursor=…` or `#/transactions?status=failed`, so that reload, back and a link work.
// A page's earlier cursors ride in the history entry's state, which a reload keeps too.

const SECTIONS = [
  'users',
  'transactions',
  'dead-letters',
  'webhooks',
  'webhook-deliveries',
  'reconciliation',
  'shards',
];

/** The route a hash names: {section, id, query}; an unknown or empty hash is the users' list. */
export function parseRoute(hash) {
  const [path, search = ''] = hash.replace(/^#\/?/, '').split('?');
  const [section, id] = path.split('/').map(decodeURIComponent);
  if (!SECTIONS.includes(section)) return { section: 'users', id: undefined, query: new URLSearchParams() };
  return { section, id: id || undefined, query: new URLSearchParams(search) };
}

/** The hash of a route; empty query values are left out. */
export function formatRoute({ section, id, query }) {
  const params = new URLSearchParams();
  for (const [name, value] of query ?? []) if (value) params.set(name, value);
  const search = params.toString();
  return `#/${section}${id ? `/${encodeURIComponent(id)}` : ''}${search ? `?${search}` : ''}`;
}

/** The query of a route with `changes` applied (a null value removes the name). */
export function withQuery(query, changes) {
  const next = new URLSearchParams(query);
  for (const [name, value] of Object.entries(changes)) {
    if (value === null || value === undefined || value === '') next.delete(name);
    else next.set(name, value);
  }
  return next;
}

/**
 * Keyset paging in the hash: the current page's cursor is the query's `cursor` (none for the first
 * page); the cursors of the pages before it are a stack kept in the history entry. "Next" pushes the
 * current cursor and goes to `next_cursor`; "Previous" pops. A link opened elsewhere has no stack:
 * its "Previous" goes to the first page.
 */
export function pager({ nav, route, page, go }) {
  const cursor = route.query.get('cursor');
  const earlier = cursor ? (history.state?.earlier ?? []) : [];
  const [previous, label, next] = ['previous', 'label', 'next'].map((name) =>
    nav.querySelector(`[data-page="${name}"]`),
  );
  previous.disabled = !cursor;
  next.disabled = !page.has_more;
  label.textContent = !cursor ? 'Page 1' : history.state?.earlier ? `Page ${earlier.length + 1}` : 'A later page';
  previous.onclick = () => {
    const back = earlier.slice(0, -1);
    go({ ...route, query: withQuery(route.query, { cursor: earlier.at(-1) ?? null }) }, { earlier: back });
  };
  next.onclick = () => {
    go(
      { ...route, query: withQuery(route.query, { cursor: page.next_cursor }) },
      { earlier: [...earlier, cursor ?? ''] },
    );
  };
}
