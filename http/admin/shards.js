// Shards: the live instances, and who owns each shard (owner, fencing epoch, lease expiry, actors).

import { $, cell, el, fillTable, when } from './dom.js';

/** The context of the view on screen (admin.js makes one per view). */
let ctx;

/** `#/shards`: the table as the gateway reads it from Redis and Postgres now. */
export async function showShards(_route, context) {
  ctx = context;
  await load();
}

async function load() {
  const table = await ctx.read('/api/v1/admin/shards', 'shard-error');
  if (!table) return;
  fillTable(
    'instance-table',
    table.instances.map((instance) =>
      el('tr', {}, cell(instance.id), cell(instance.url), cell(when(instance.started_at))),
    ),
  );
  fillTable(
    'shard-table',
    table.shards.map((shard) =>
      el(
        'tr',
        { dataset: { shard: String(shard.shard) } },
        cell(String(shard.shard), 'number'),
        cell(shard.owner ?? 'none'),
        cell(shard.epoch, 'number'),
        cell(when(shard.lease_expires_at)),
        cell(shard.actors_alive === null ? '—' : String(shard.actors_alive), 'number'),
      ),
    ),
  );
}

$('shards-refresh').addEventListener('click', () => void load());
