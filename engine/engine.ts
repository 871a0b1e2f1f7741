import type { Context } from '@opentelemetry/api';
import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import { createJournal, readJournal, type Journal } from '../persistence/journal.ts';
import type { SnapshotStore } from '../persistence/snapshots.ts';
import type { Sql } from '../persistence/sql.ts';
import type { AccountDeps } from './account-actor.ts';
import type { Storage } from '../persistence/storage.ts';
import type { AccountState, Change } from './account.ts';
import { createBankClient, type BankClient } from './bank-client.ts';
import { relayFeed } from './feed-relay.ts';
import { startOpenPaymentSweep } from './open-payment-sweep.ts';
import { createPayments, type Payments } from './payments.ts';
import { createRegistry, type Registry } from './registry.ts';
import { startShardLeases, type ShardLeases } from './shard-leases.ts';
import { shardOf, type Ownership } from './shards.ts';
import { createTransactionFeed, type TransactionFeed } from './transaction-feed.ts';

/** The engine's own limits (those an operator tunes are in config.ts). */
export const ENGINE_LIMITS = {
  /** Commands one actor turn takes from its mailbox and commits together. */
  actor_batch_max: 256,
  /** Live event-stream subscribers in all, per owner, and changes buffered for one before it is dropped. */
  feed_subscribers_max: 1000,
  feed_subscribers_per_owner_max: 8,
  feed_buffer_max: 256,
  /** How long committed changes gather before one publish to the other instances, and how many at most. */
  feed_relay_flush_ms: 10,
  feed_relay_batch_max: 500,
  /** The open-payment sweep: rows per read-model page, and accounts asked at once. */
  sweep_page_rows_max: 1000,
  sweep_asks_in_flight_max: 16,
  /** How long start-up waits for the first round of shard leases before answering anyway. */
  shards_first_round_wait_ms: 2000,
} as const;

/** The settings the engine reads: the typed configuration, nothing parsed here. */
export type EngineSettings = Pick<
  Config,
  | 'INSTANCE_ID'
  | 'SHARDS'
  | 'SHARD_LEASE_MS'
  | 'DATABASE_POOL_MAX'
  | 'JOURNAL_BATCH_SIZE_MAX'
  | 'JOURNAL_BATCH_WAIT_MS'
  | 'JOURNAL_QUEUE_APPENDS_MAX'
  | 'ACTORS_LIVE_MAX'
  | 'PAYMENT_WORKERS_MAX'
  | 'IDEMPOTENCY_TTL_HOURS'
  | 'SNAPSHOT_EVERY_EVENTS'
  | 'ACTOR_IDLE_MS'
  | 'ACTOR_MAILBOX_MAX'
  | 'ACTOR_ASK_TIMEOUT_MS'
  | 'OPEN_PAYMENT_SWEEP_MS'
  | 'BANK_TIMEOUT_MS'
  | 'BANK_BREAKER_RESET_MS'
  | 'BANK_CALLS_IN_FLIGHT_MAX'
  | 'BANK_ATTEMPTS_MAX'
  | 'BANK_BACKOFF_BASE_MS'
  | 'BANK_BACKOFF_MAX_MS'
  | 'BANK_CALLBACK_DEADLINE_MS'
  | 'BANK_POLLS_MAX'
>;

/** Told of each commit, after it is applied: the state after, the events, and the state before. */
/** Told of each commit: the account's state after it, and each event with its transaction as it left it. */
export type CommitListener = (
  state: AccountState,
  changes: readonly Change[],
  traces?: readonly (Context | undefined)[],
) => void;

/** What the engine reports for metrics; every hook optional. */
export interface EngineObservers {
  journalBatch?: (size: number, latency_ms: number) => void;
  bankCall?: (operation: 'submit' | 'status', outcome: string, latency_ms: number) => void;
  retry?: (reason: 'transient' | 'not_found') => void;
  deadLetter?: () => void;
}

export interface EngineOptions {
  settings: EngineSettings;
  storage: Storage;
  /** The bank's base URL. */
  bank_url: string;
  /** Where the other instances reach this one (forwarded requests). */
  instance_url: string;
  log: Logger;
  observe?: EngineObservers;
}

export interface Engine {
  accounts: Registry;
  payments: Payments;
  /** The shards this instance holds, and who holds the others. */
  ownership: ShardLeases;
  journal: Journal;
  feed: TransactionFeed;
  bank: BankClient;
  /** Subscribes to every commit (metrics, the dashboard's activity). */
  onCommitted(listener: CommitListener): void;
  /** Joins the cluster and takes this instance's shards (waits for the first round, bounded). */
  start(): Promise<void>;
  /** Takes no more shards and ends the event streams: the first step of a shutdown. */
  drain(): void;
  /** Stops the workers and actors, gives the shards back, and commits what is queued. */
  stop(): Promise<void>;
}

/** The settings the account actors and their journal read. */
export type AccountSettings = Pick<
  Config,
  | 'DATABASE_POOL_MAX'
  | 'JOURNAL_BATCH_SIZE_MAX'
  | 'JOURNAL_BATCH_WAIT_MS'
  | 'JOURNAL_QUEUE_APPENDS_MAX'
  | 'IDEMPOTENCY_TTL_HOURS'
  | 'SNAPSHOT_EVERY_EVENTS'
  | 'ACTOR_IDLE_MS'
  | 'ACTOR_MAILBOX_MAX'
  | 'ACTORS_LIVE_MAX'
  | 'ACTOR_ASK_TIMEOUT_MS'
>;

export interface AccountsOptions {
  settings: AccountSettings;
  sql: Sql;
  snapshots: SnapshotStore;
  /** Which shards this instance holds, and under which epochs (the shard leases, or a test's own). */
  ownership: Ownership;
  log: Logger;
  /** How an account's events are read back (default: the journal in Postgres). */
  readEvents?: AccountDeps['readEvents'];
  onJournalBatch?: (size: number, latency_ms: number) => void;
}

/**
 * The account core: the group-committed journal and the registry of account actors over it. The
 * engine builds it with its shard leases; the engine's tests build it alone, with an ownership of
 * their own, through this same function.
 */
export function createAccounts(options: AccountsOptions) {
  const { settings: s, sql, log } = options;
  const commitListeners: CommitListener[] = [];
  const recoveredListeners: ((state: AccountState) => void)[] = [];
  const journal = createJournal(sql, {
    batch_size_max: s.JOURNAL_BATCH_SIZE_MAX,
    batch_wait_ms: s.JOURNAL_BATCH_WAIT_MS,
    queue_appends_max: s.JOURNAL_QUEUE_APPENDS_MAX,
    // Half the pool commits; the other half serves reads, the idempotency gate and the leases.
    flushes_in_flight_max: Math.max(1, Math.floor(s.DATABASE_POOL_MAX / 2)),
    idempotency_ttl_hours: s.IDEMPOTENCY_TTL_HOURS,
    log: log.child({ module: 'journal' }),
    onBatch: options.onJournalBatch,
  });
  const deps: AccountDeps = {
    onCommitted: (state, changes, traces) => {
      for (const listener of commitListeners) listener(state, changes, traces);
    },
    onRecovered: (state) => {
      for (const listener of recoveredListeners) listener(state);
    },
    journal,
    snapshots: options.snapshots,
    readEvents: options.readEvents ?? ((user_id, after_seq) => readJournal(sql, user_id, after_seq)),
    ownership: options.ownership,
    snapshot_every_events: s.SNAPSHOT_EVERY_EVENTS,
    log: log.child({ module: 'account' }),
  };
  const accounts = createRegistry({
    deps,
    idle_ms: s.ACTOR_IDLE_MS,
    mailbox_max: s.ACTOR_MAILBOX_MAX,
    actors_live_max: s.ACTORS_LIVE_MAX,
    batch_max: ENGINE_LIMITS.actor_batch_max,
    ask_timeout_ms: s.ACTOR_ASK_TIMEOUT_MS,
    log: log.child({ module: 'registry' }),
  });
  return {
    journal,
    accounts,
    /** What each actor is built with (tests build a behaviour of their own from it). */
    deps,
    /** Subscribes to every commit, after it is applied. */
    onCommitted: (listener: CommitListener) => void commitListeners.push(listener),
    /** Subscribes to every recovered account (its open transactions go back to workers). */
    onRecovered: (listener: (state: AccountState) => void) => void recoveredListeners.push(listener),
    /** Stops the actors, then commits what is queued. */
    async close() {
      await accounts.close();
      await journal.close();
    },
  };
}

export type Accounts = ReturnType<typeof createAccounts>;

/**
 * The engine's one wiring place: the journal, the account actors, the payment workers and the bank
 * client, the shard leases, the live feed and its relay, and the open-payment sweep. Objects are built
 * in dependency order; the two links that go back up (an ownership change reaching the actors and
 * workers, a commit reaching the workers and the feed) are subscriptions made once all exist.
 */
export function createEngine(options: EngineOptions): Engine {
  const { settings: s, storage, log } = options;
  const ownership = startShardLeases({
    locks: storage.shardLocks,
    instances: storage.instances,
    leases: storage.leases,
    instance: { id: s.INSTANCE_ID, url: options.instance_url },
    shards: s.SHARDS,
    lease_ms: s.SHARD_LEASE_MS,
    log: log.child({ module: 'shard-leases' }),
  });
  const core = createAccounts({
    settings: s,
    sql: storage.sql,
    snapshots: storage.snapshots,
    ownership,
    log,
    onJournalBatch: options.observe?.journalBatch,
  });
  const { accounts, journal } = core;
  const bank = createBankClient({
    base_url: options.bank_url,
    timeout_ms: s.BANK_TIMEOUT_MS,
    breaker_reset_ms: s.BANK_BREAKER_RESET_MS,
    calls_in_flight_max: s.BANK_CALLS_IN_FLIGHT_MAX,
    log: log.child({ module: 'bank-client' }),
    onCall: options.observe?.bankCall,
  });
  const payments = createPayments({
    bank,
    accounts,
    deadLetters: storage.deadLetters,
    attempts_max: s.BANK_ATTEMPTS_MAX,
    workers_max: s.PAYMENT_WORKERS_MAX,
    backoff_base_ms: s.BANK_BACKOFF_BASE_MS,
    backoff_max_ms: s.BANK_BACKOFF_MAX_MS,
    callback_deadline_ms: s.BANK_CALLBACK_DEADLINE_MS,
    polls_max: s.BANK_POLLS_MAX,
    breaker_wait_ms: s.BANK_BREAKER_RESET_MS,
    log: log.child({ module: 'payments' }),
    onRetry: options.observe?.retry,
    onDeadLetter: options.observe?.deadLetter,
  });
  const feed = createTransactionFeed({
    subscribers_max: ENGINE_LIMITS.feed_subscribers_max,
    subscribers_per_owner_max: ENGINE_LIMITS.feed_subscribers_per_owner_max,
    buffer_max: ENGINE_LIMITS.feed_buffer_max,
    log: log.child({ module: 'transaction-feed' }),
  });
  const relay = relayFeed(feed, {
    channel: storage.feedChannel,
    instance: s.INSTANCE_ID,
    flush_ms: ENGINE_LIMITS.feed_relay_flush_ms,
    batch_max: ENGINE_LIMITS.feed_relay_batch_max,
    log: log.child({ module: 'feed-relay' }),
  });
  const sweep = startOpenPaymentSweep({
    openTransactions: (query) => storage.readModel.openTransactions(query),
    accounts,
    payments: { has: (id) => payments.has(id), resume: (state) => payments.onRecovered(state) },
    ownership,
    interval_ms: s.OPEN_PAYMENT_SWEEP_MS,
    page_size_max: ENGINE_LIMITS.sweep_page_rows_max,
    asks_in_flight_max: ENGINE_LIMITS.sweep_asks_in_flight_max,
    log: log.child({ module: 'open-payment-sweep' }),
  });

  // The links back up, now that everything exists.
  core.onRecovered((state) => payments.onRecovered(state));
  core.onCommitted((state, changes, traces) => payments.onCommitted(state, changes, traces));
  core.onCommitted((state, changes) => feed.onCommitted(state.user_id, changes));
  feed.shareWith((transactions) => relay.share(transactions));
  ownership.listen({
    actorsPerShard: () => accounts.perShard(),
    acquired: (shards) => void sweep.taken(shards),
    lost: (shards) => {
      const lost = new Set(shards);
      for (const shard of shards) accounts.dropShard(shard);
      payments.release((user_id) => lost.has(shardOf(user_id, s.SHARDS)));
    },
  });

  return {
    accounts,
    payments,
    ownership,
    journal,
    feed,
    bank,
    onCommitted: core.onCommitted,
    async start() {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        ownership.start(),
        new Promise((resolve) => (timer = setTimeout(resolve, ENGINE_LIMITS.shards_first_round_wait_ms))),
      ]);
      clearTimeout(timer);
    },
    drain() {
      // A peer stopping at the same time must not hand us its shards while we stop.
      ownership.drain();
      // Open event streams would hold the HTTP server open until its shutdown timeout: end them now.
      feed.close();
    },
    async stop() {
      await sweep.stop();
      payments.stop();
      bank.shutdown();
      // Actors stop first, then the shards go back (the others take them over at once), then the
      // journal commits what is queued.
      await accounts.close();
      await ownership.stop();
      relay.close();
      await journal.close();
    },
  };
}
