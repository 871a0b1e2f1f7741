import { shardOf } from '../engine/shards.ts';
import type { Sql } from '../persistence/sql.ts';
import { reserve, userKey } from './lib.ts';

// Data sets written straight into Postgres with INSERT … SELECT, in the shapes the gateway itself writes
// (persistence/journal.ts, persistence/snapshots.ts, engine/account-codec.ts):
// - users, and their keys in api_keys: key_hash = sha256(userKey(i)), as http/auth.ts hashes keys;
// - per user, `deposits` USD deposits, each two journal events (transaction_created, then
//   transaction_succeeded after 2 s), seq 1 … 2·deposits, payloads as account-codec's toStored writes them;
// - the transactions read model: one succeeded row per deposit;
// - snapshots (version 1, bigints as strings) after all but the last deposit, so that recovery is a
//   snapshot plus a two-event tail, except for every `no_snapshot_every`-th user, which replays it all.
// The i-th user's d-th deposit (d = 1 … deposits) is 100·d + (i mod 997) minor units.

const SHARDS = 64;

export interface GeneratedAccounts {
  users: { i: number; id: string; key: string; snapshot: boolean }[];
  deposits: number;
  /** What the engine must answer as the i-th user's available USD balance. */
  expectedBalance(i: number): bigint;
  /** Seconds spent writing each table. */
  seconds: Record<string, number>;
}

export interface DatasetOptions {
  /** Index of the first user (userKey(i)); lets two calls add users to one database. */
  first_index?: number;
  users: number;
  deposits: number;
  /** Every n-th user (i mod n = 0) has no snapshot; 0: all have one. */
  no_snapshot_every: number;
  /** Time between two consecutive creations, and how many creations share one instant (ties on created_at). */
  spacing_ms: number;
  per_instant?: number;
  /** The shard count the gateway runs with (SHARDS), for the journal's shard column. */
  shards?: number;
}

/** Writes the data set; the helper table bench_accounts(i, user_id, shard) stays, for the scenario's own use. */
export async function generateAccounts(sql: Sql, options: DatasetOptions): Promise<GeneratedAccounts> {
  const first = options.first_index ?? 0;
  const last = first + options.users - 1;
  const deposits = options.deposits;
  const perInstant = options.per_instant ?? 1;
  const shards = options.shards ?? SHARDS;
  const users = Array.from({ length: options.users }, (_, k) => {
    const i = first + k;
    return {
      i,
      id: crypto.randomUUID(),
      key: userKey(i),
      snapshot: deposits >= 2 && !(options.no_snapshot_every > 0 && i % options.no_snapshot_every === 0),
    };
  });
  // Creations run back from now, the newest one `spacing_ms` ago, all at whole milliseconds (as the
  // gateway's own timestamps, which come from Date#toISOString).
  const total = options.users * deposits;
  const base = new Date(Date.now() - (Math.ceil(total / perInstant) + 1) * options.spacing_ms).toISOString();
  const seconds: Record<string, number> = {};
  const timed = async (name: string, work: () => Promise<unknown>) => {
    const started = performance.now();
    await work();
    seconds[name] = Math.round((performance.now() - started) / 100) / 10;
  };

  const conn = await reserve(sql);
  try {
    // Bulk loading only: the gateway's own commits keep synchronous_commit on.
    await conn`SET synchronous_commit = off`;
    await conn`SET statement_timeout = 0`;
    await conn`CREATE TABLE IF NOT EXISTS bench_accounts (i int PRIMARY KEY, user_id uuid NOT NULL, shard int NOT NULL)`;
    await timed('users', async () => {
      const rows = users.map((u) => [u.i, u.id, shardOf(u.id, shards)]);
      await conn`
        INSERT INTO bench_accounts (i, user_id, shard)
        SELECT (e->>0)::int, (e->>1)::uuid, (e->>2)::int FROM jsonb_array_elements(${JSON.stringify(rows)}::text::jsonb) e`;
      await conn`
        INSERT INTO users (id, name, email, created_at)
        SELECT user_id, 'bench ' || i, 'bench' || i || '@bench.test', ${base}::timestamptz
        FROM bench_accounts WHERE i BETWEEN ${first} AND ${last}`;
      await conn`
        INSERT INTO api_keys (id, user_id, key_hash, created_at)
        SELECT gen_random_uuid(), user_id, sha256(convert_to('pgw_bench_user_' || lpad(i::text, 8, '0'), 'UTF8')),
               ${base}::timestamptz
        FROM bench_accounts WHERE i BETWEEN ${first} AND ${last}`;
    });
    // One row per deposit, with its id, amount and times, shared by the three tables below.
    await conn`DROP TABLE IF EXISTS bench_deposits`;
    await timed(
      'deposits (helper)',
      () =>
        conn`
        CREATE UNLOGGED TABLE bench_deposits AS
        SELECT a.i, a.user_id, a.shard, d,
               md5(a.user_id::text || ':' || d)::uuid AS id,
               (100 * d + a.i % 997)::bigint AS amount,
               t.created, t.created + interval '2 seconds' AS settled
        FROM bench_accounts a
        CROSS JOIN generate_series(1, ${deposits}) d
        CROSS JOIN LATERAL (
          SELECT ${base}::timestamptz
                 + ((((a.i - ${first})::bigint * ${deposits} + d - 1) / ${perInstant}) * ${options.spacing_ms})::float8
                   * interval '1 millisecond'
                 AS created
        ) t
        WHERE a.i BETWEEN ${first} AND ${last}`,
    );
    const iso = (column: string) =>
      conn.unsafe(`to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`);
    await timed(
      'transactions',
      () =>
        conn`
        INSERT INTO transactions (id, user_id, type, amount, currency, status, attempts, created_at, updated_at, completed_at)
        SELECT id, user_id, 'deposit', amount, 'USD', 'succeeded', 1, created, settled, settled FROM bench_deposits`,
    );
    await timed(
      'journal',
      () =>
        conn`
        INSERT INTO journal (user_id, seq, shard, epoch, type, transaction_id, payload, request_id, created_at)
        SELECT user_id, 2 * d - 1, shard, 1, 'transaction_created', id,
               jsonb_build_object('type', 'transaction_created', 'transaction', jsonb_build_object(
                 'id', id, 'user_id', user_id, 'type', 'deposit', 'amount', amount::text, 'currency', 'USD',
                 'status', 'pending', 'description', NULL, 'metadata', NULL, 'failure', NULL, 'bank_reference', NULL,
                 'attempts', 0, 'request_id', NULL, 'created_at', ${iso('created')}, 'updated_at', ${iso('created')},
                 'completed_at', NULL)),
               NULL, created
        FROM bench_deposits
        UNION ALL
        SELECT user_id, 2 * d, shard, 1, 'transaction_succeeded', id,
               jsonb_build_object('type', 'transaction_succeeded', 'transaction_id', id, 'attempts', 1,
                 'at', ${iso('settled')}, 'cause', 'bank_callback', 'request_id', NULL),
               NULL, settled
        FROM bench_deposits`,
    );
    const withSnapshot = users.filter((u) => u.snapshot).map((u) => u.i);
    await timed(
      'snapshots',
      () =>
        conn`
        INSERT INTO snapshots (user_id, seq, state)
        SELECT a.user_id, ${2 * (deposits - 1)},
               jsonb_build_object('version', 1, 'user_id', a.user_id, 'seq', ${2 * (deposits - 1)}::int,
                 'balances', jsonb_build_object('USD', jsonb_build_object(
                   'available', (100 * k * (k + 1) / 2 + k * (a.i % 997))::text, 'held', '0')),
                 'open', '{}'::jsonb)
        FROM bench_accounts a, (SELECT ${deposits - 1}::bigint AS k) n
        WHERE a.i IN (SELECT (value)::int FROM jsonb_array_elements_text(${JSON.stringify(withSnapshot)}::text::jsonb))`,
    );
    await conn`DROP TABLE bench_deposits`;
    await timed('analyze + checkpoint', async () => {
      await conn`ANALYZE`;
      await conn`CHECKPOINT`;
    });
  } finally {
    conn.release();
  }
  return {
    users,
    deposits,
    expectedBalance: (i) => {
      const k = BigInt(deposits);
      return (100n * k * (k + 1n)) / 2n + k * BigInt(i % 997);
    },
    seconds,
  };
}
