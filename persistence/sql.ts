import postgres from 'postgres';

export type Sql = postgres.Sql<{ bigint: bigint }>;

export interface SqlOptions {
  pool_max: number;
  application_name: string;
  /** Postgres ends a transaction left idle this long (default 10 s); the gateway passes its lease. */
  idle_in_transaction_ms?: number;
}

/** postgres.js with every pool option set here rather than left to the library's defaults. */
export function createSql(url: string, options: SqlOptions): Sql {
  return postgres(url, {
    max: options.pool_max,
    idle_timeout: 30,
    connect_timeout: 5,
    max_lifetime: 60 * 30,
    prepare: true,
    fetch_types: false,
    onnotice: () => {},
    // A paused or stuck process must not hold row locks (a shard's lease row) for long: Postgres ends
    // a transaction left idle this long, which also lets a shard takeover through.
    connection: {
      application_name: options.application_name,
      statement_timeout: 30_000,
      idle_in_transaction_session_timeout: options.idle_in_transaction_ms ?? 10_000,
    },
    types: { bigint: postgres.BigInt },
  });
}

/** Anything a query can run on: the pool or an open transaction. */
export type Queryable = Sql | postgres.TransactionSql<{ bigint: bigint }>;
