import type { BankClient } from '../../engine/bank-client.ts';
import type { PaymentView, Payments } from '../../engine/payments.ts';
import type { Registry } from '../../engine/registry.ts';
import type { ShardLeases } from '../../engine/shard-leases.ts';
import type { Ownership } from '../../engine/shards.ts';
import type { DeadLetterStore } from '../../persistence/dead-letters.ts';
import { deadLetterJson } from '../routes/admin.ts';
import type { Activity, FinishedTransaction, Throughput } from './activity.ts';

/** Where the dashboard reads this instance's state from. */
export interface OverviewSources {
  instance: string;
  accounts: Pick<Registry, 'alive' | 'mailboxDepth'>;
  payments: Pick<Payments, 'inFlight'>;
  bank: Pick<BankClient, 'state'>;
  deadLetters: Pick<DeadLetterStore, 'page'>;
  /** Every shard's lease holder and expiry (Redis), epoch (Postgres) and actors alive. */
  shardTable: ShardLeases['table'];
  ownership: Pick<Ownership, 'owned' | 'shards'>;
  activity: Activity;
}

/** One owner's share of the shard table. */
export interface ShardOwner {
  owner: string | null;
  shards: number[];
  epoch_max: string;
  /** The earliest expiry among this owner's leases (in Redis); null for shards nobody holds. */
  lease_expires_at: string | null;
  /** Account actors alive on this owner's shards, as it last reported; null for shards nobody holds. */
  actors_alive: number | null;
}

/** What `GET /api/state` answers: everything the dashboard page shows, JSON-safe. */
export interface Overview {
  instance: string;
  at: string;
  circuit: ReturnType<BankClient['state']>;
  actors: { alive: number; mailbox_depth: number };
  payments: { in_flight: number; shown: PaymentView[] };
  recent: FinishedTransaction[];
  dead_letters: Record<string, unknown>[];
  shards: { total: number; owned_here: number; owners: ShardOwner[] };
  throughput: Throughput;
}

// The page stays readable, and one poll cheap, however much is going on.
const PAYMENTS_SHOWN_MAX = 100;
const DEAD_LETTERS_SHOWN_MAX = 20;

/** Reads the instance's state for the dashboard: dead letters (Postgres) and the shard table (Redis and Postgres). */
export async function readOverview(from: OverviewSources): Promise<Overview> {
  const [letters, table] = await Promise.all([from.deadLetters.page(DEAD_LETTERS_SHOWN_MAX), from.shardTable()]);
  const inFlight = from.payments.inFlight();
  const owners = new Map<string | null, ShardOwner>();
  for (const row of table.shards) {
    const owner = owners.get(row.owner) ?? {
      owner: row.owner,
      shards: [],
      epoch_max: '0',
      lease_expires_at: null,
      actors_alive: null,
    };
    owner.shards.push(row.shard);
    if (BigInt(row.epoch) > BigInt(owner.epoch_max)) owner.epoch_max = row.epoch;
    const expires = row.lease_expires_at;
    if (
      expires !== null &&
      (owner.lease_expires_at === null || Date.parse(expires) < Date.parse(owner.lease_expires_at))
    )
      owner.lease_expires_at = expires;
    if (row.actors_alive !== null) owner.actors_alive = (owner.actors_alive ?? 0) + row.actors_alive;
    owners.set(row.owner, owner);
  }
  return {
    instance: from.instance,
    at: new Date().toISOString(),
    circuit: from.bank.state(),
    actors: { alive: from.accounts.alive(), mailbox_depth: from.accounts.mailboxDepth() },
    payments: { in_flight: inFlight.length, shown: inFlight.slice(0, PAYMENTS_SHOWN_MAX) },
    recent: from.activity.recent(),
    dead_letters: letters.map(deadLetterJson),
    shards: { total: from.ownership.shards, owned_here: from.ownership.owned().length, owners: [...owners.values()] },
    throughput: from.activity.throughput(),
  };
}
