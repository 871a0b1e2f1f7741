import autocannon from 'autocannon';
import { generateAccounts } from './dataset.ts';
import {
  connect,
  distribution,
  DURATION_S,
  log,
  reserve,
  startGateway,
  timedGet,
  verdict,
  type Report,
} from './lib.ts';

// Scenario 8, lists: GET /api/v1/users/{id}/transactions, page 1 against page 5,000 (20 per page: the last
// page) for one user with 100,000 transactions (among 999 other users with 20 each). Two creations share
// each millisecond, so the keyset's id tie-break is exercised. Page 5,000's cursor is reached by following
// next_cursor from page 1 (timing every hop), and checked against the one built from the format of
// http/cursor.ts (base64url of [created_at ISO, id] of the last row of page 4,999). Then autocannon on each
// page, and EXPLAIN ANALYZE of the read model's query (persistence/read-model.ts) for both positions.

const TRANSACTIONS = 100_000;
const PAGE_SIZE = 20;
const DEEP_PAGE = TRANSACTIONS / PAGE_SIZE;
const FOLLOW_MAX_S = 180;

interface Page {
  data: { id: string; created_at: string }[];
  next_cursor: string | null;
  has_more: boolean;
}

export async function lists(): Promise<Report> {
  const sql = connect('bench-dataset');
  log(`lists: generating one user with ${TRANSACTIONS} transactions`);
  const target = await generateAccounts(sql, {
    users: 1,
    deposits: TRANSACTIONS,
    no_snapshot_every: 0,
    spacing_ms: 1000,
    per_instant: 2,
  });
  await generateAccounts(sql, { first_index: 1, users: 999, deposits: 20, no_snapshot_every: 0, spacing_ms: 1000 });
  const user = target.users[0]!;
  const gateway = await startGateway();
  try {
    const listUrl = `${gateway.url}/api/v1/users/${user.id}/transactions`;
    const get = async (cursor?: string) => {
      const answer = await timedGet(cursor ? `${listUrl}?cursor=${cursor}` : listUrl, user.key);
      if (answer.status !== 200) throw new Error(`list answered ${answer.status}: ${answer.text.slice(0, 300)}`);
      return { ms: answer.ms, page: answer.body as Page };
    };
    // Follow the cursors from page 1 to page 5,000, one request at a time.
    const first = await get();
    const hops: number[] = [first.ms];
    let page = first.page;
    let cursorOfDeep: string | undefined;
    const seen = new Set(page.data.map((row) => row.id));
    const followStarted = performance.now();
    for (let n = 2; n <= DEEP_PAGE && page.next_cursor; n += 1) {
      if ((performance.now() - followStarted) / 1000 > FOLLOW_MAX_S) break;
      if (n === DEEP_PAGE) cursorOfDeep = page.next_cursor;
      const next = await get(page.next_cursor);
      hops.push(next.ms);
      page = next.page;
      for (const row of page.data) seen.add(row.id);
    }
    const follow_s = Math.round((performance.now() - followStarted) / 100) / 10;
    log(`lists: followed ${hops.length} pages in ${follow_s} s, ${seen.size} distinct rows`);

    // The same cursor from its format: the 99,980th row, newest first.
    const [edge] = await sql<{ created_at: Date; id: string }[]>`
      SELECT created_at, id FROM transactions WHERE user_id = ${user.id}
      ORDER BY created_at DESC, id DESC OFFSET ${(DEEP_PAGE - 1) * PAGE_SIZE - 1} LIMIT 1`;
    const built = Buffer.from(JSON.stringify([edge!.created_at.toISOString(), edge!.id])).toString('base64url');
    const deep = await get(built);
    const oldest = await sql<{ id: string }[]>`
      SELECT id FROM transactions WHERE user_id = ${user.id} ORDER BY created_at ASC, id ASC LIMIT ${PAGE_SIZE}`;
    const deepIsOldest =
      deep.page.data.length === PAGE_SIZE &&
      !deep.page.has_more &&
      deep.page.data.every((row) => oldest.some((o) => o.id === row.id));

    // EXPLAIN ANALYZE the read model's page query, with the values of page 1 and page 5,000, as a custom
    // plan (literals) and as the generic plan a prepared statement may settle on.
    const query = `SELECT id, user_id, type, amount, currency, status, description, metadata, failure_code,
      failure_message, bank_reference, attempts, created_at, updated_at, completed_at FROM transactions
      WHERE TRUE AND user_id = $1 AND (created_at, id) < ($2, $3) ORDER BY created_at DESC, id DESC LIMIT 21`;
    const firstQuery = query.replace(' AND (created_at, id) < ($2, $3)', '');
    const plans: Record<string, string> = {};
    const conn = await reserve(sql);
    try {
      const explain = async (name: string, text: string) => {
        const rows = await conn.unsafe<{ 'QUERY PLAN': string }[]>(`EXPLAIN (ANALYZE, BUFFERS) ${text}`);
        plans[name] = rows.map((r) => r['QUERY PLAN']).join('\n');
      };
      const lit = (text: string) =>
        text
          .replace('$1', `'${user.id}'`)
          .replace('$2', `'${edge!.created_at.toISOString()}'::timestamptz`)
          .replace('$3', `'${edge!.id}'::uuid`);
      await explain('page 1', lit(firstQuery));
      await explain(`page ${DEEP_PAGE}`, lit(query));
      await conn.unsafe(`SET plan_cache_mode = force_generic_plan`);
      await conn.unsafe(`PREPARE bench_page1 (uuid) AS ${firstQuery}`);
      await conn.unsafe(`PREPARE bench_deep (uuid, timestamptz, uuid) AS ${query}`);
      await explain('page 1, generic plan', `EXECUTE bench_page1 ('${user.id}')`);
      await explain(
        `page ${DEEP_PAGE}, generic plan`,
        `EXECUTE bench_deep ('${user.id}', '${edge!.created_at.toISOString()}', '${edge!.id}')`,
      );
      await conn.unsafe('DEALLOCATE ALL');
      await conn.unsafe('RESET plan_cache_mode');
    } finally {
      conn.release();
    }
    const indexUsed = Object.fromEntries(
      Object.entries(plans).map(([name, plan]) => [
        name,
        plan.includes('Index Scan using transactions_user_page') && !/\bSort\b/.test(plan),
      ]),
    );
    const executionMs = (plan: string) => Number(/Execution Time: ([\d.]+) ms/.exec(plan)?.[1]);

    // Latency of each page under autocannon: one connection (latency alone), then 64 (under load).
    const cannon = async (path: string, connections: number, seconds: number) => {
      const result = await autocannon({
        url: `${listUrl}${path}`,
        connections,
        duration: seconds,
        headers: { authorization: `Bearer ${user.key}` },
      });
      if (result.non2xx > 0) throw new Error(`${result.non2xx} non-2xx on ${path}`);
      return {
        connections,
        requests_per_s: Math.round(result.requests.average),
        avg_ms: Math.round(result.latency.average * 100) / 100,
        p50_ms: result.latency.p50,
        p99_ms: result.latency.p99,
        errors: result.errors + result.timeouts,
      };
    };
    const seconds = Math.max(5, Math.round(DURATION_S / 2));
    const deepPath = `?cursor=${built}`;
    const load = {
      page1_c1: await cannon('', 1, seconds),
      deep_c1: await cannon(deepPath, 1, seconds),
      page1_c64: await cannon('', 64, seconds),
      deep_c64: await cannon(deepPath, 64, seconds),
    };
    const ratio = (a: number, b: number) => Math.round((a / b) * 100) / 100;
    const ratios = {
      c1_avg: ratio(load.deep_c1.avg_ms, load.page1_c1.avg_ms),
      c1_p99: ratio(load.deep_c1.p99_ms, load.page1_c1.p99_ms),
      c64_avg: ratio(load.deep_c64.avg_ms, load.page1_c64.avg_ms),
      c64_p99: ratio(load.deep_c64.p99_ms, load.page1_c64.p99_ms),
    };
    const worst = Math.max(ratios.c1_avg, ratios.c64_avg);
    const verdicts = [
      {
        what: `page ${DEEP_PAGE.toLocaleString('en')} latency / page 1 latency (mean, autocannon)`,
        target: '≤ 2×',
        measured: `${worst}×`,
        met: worst <= 2,
      },
      {
        what: 'both pages served by the index transactions_user_page, no sort (EXPLAIN ANALYZE)',
        target: 'index scan',
        measured: Object.values(indexUsed).every(Boolean) ? 'index scan, no sort' : JSON.stringify(indexUsed),
        met: Object.values(indexUsed).every(Boolean),
      },
    ];
    const hopsEarly = distribution(hops.slice(0, 100));
    const hopsLate = distribution(hops.slice(-100));
    const figures = {
      transactions: TRANSACTIONS,
      pages_followed: hops.length,
      follow_s,
      distinct_rows_seen: seen.size,
      followed_cursor_equals_built: cursorOfDeep === built,
      deep_page_is_oldest_20: deepIsOldest,
      hop_ms_first_100_pages: hopsEarly,
      hop_ms_last_100_pages: hopsLate,
      load,
      ratios,
      plans_index_only: indexUsed,
      execution_ms: Object.fromEntries(Object.entries(plans).map(([name, plan]) => [name, executionMs(plan)])),
      plans,
    };
    const line = (name: string, r: (typeof load)['page1_c1']) =>
      `| ${name} | ${r.connections} | ${r.requests_per_s} | ${r.avg_ms} | ${r.p50_ms} | ${r.p99_ms} | ${r.errors} |`;
    const markdown = [
      `- ${verdicts[0]!.what}: ${verdict(verdicts[0]!)} (1 connection: mean ${ratios.c1_avg}×, p99 ${ratios.c1_p99}×; ` +
        `64 connections: mean ${ratios.c64_avg}×, p99 ${ratios.c64_p99}×).`,
      `- ${verdicts[1]!.what}: ${verdict(verdicts[1]!)}. Execution time: ${Object.entries(figures.execution_ms)
        .map(([name, ms]) => `${name} ${ms} ms`)
        .join(', ')}.`,
      `- Following next_cursor from page 1: ${hops.length} pages in ${follow_s} s, ${seen.size.toLocaleString('en')} ` +
        `distinct transactions seen; hop latency p50/p99 ${hopsEarly.p50}/${hopsEarly.p99} ms over the first 100 ` +
        `pages, ${hopsLate.p50}/${hopsLate.p99} ms over the last 100. The cursor followed to page ${DEEP_PAGE} ` +
        `${cursorOfDeep === built ? 'equals' : 'DIFFERS from'} the one built from the format; that page holds the ` +
        `${deepIsOldest ? 'oldest 20 transactions and has_more false' : 'WRONG rows'}.`,
      '',
      `| GET /users/{id}/transactions (${seconds} s each) | connections | req/s | mean ms | p50 ms | p99 ms | errors |`,
      '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
      line('page 1', load.page1_c1),
      line(`page ${DEEP_PAGE}`, load.deep_c1),
      line('page 1', load.page1_c64),
      line(`page ${DEEP_PAGE}`, load.deep_c64),
      '',
      `Plan of page ${DEEP_PAGE} (custom plan):`,
      '',
      '```',
      plans[`page ${DEEP_PAGE}`],
      '```',
    ].join('\n');
    return { scenario: 'lists', figures, verdicts, markdown };
  } finally {
    await gateway.child.stop();
    await sql.end();
  }
}
