import type { BankClient } from '../../engine/bank-client.ts';
import type { PaymentView, Payments } from '../../engine/payments.ts';
import type { Registry } from '../../engine/registry.ts';
import type { Ownership } from '../../engine/shards.ts';
import type { DeadLetterStore } from '../../persistence/dead-letters.ts';
import type { LeaseStore } from '../../persistence/leases.ts';
import { deadLetterJson } from '../routes/admin.ts';
import type { Activity, FinishedTransaction, Throughput } from './activity.ts';

/** Where the dashboard reads this instance's state from. */
export interface OverviewSources {
  instance: string;
  accounts: Pick<Registry, 'alive' | 'mailboxDepth'>;
  payments: Pick<Payments, 'inFlight'>;
  bank: Pick<BankClient, 'state'>;
  deadLetters: Pick<DeadLetterStore, 'page'>;
  leases: Pick<LeaseStore, 'list'>;
  ownership: Pick<Ownership, 'owned' | 'shards'>;
  activity: Activity;
}

/** One owner's share of the shard table. */
export interface ShardOwner {
  owner: string | null;
  shards: number[];
  epoch_max: string;
  lease_expires_at: string | null;
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

/** Reads the instance's state for the dashboard (two small queries: dead letters and shard leases). */
export async function readOverview(from: OverviewSources): Promise<Overview> {
  const [letters, leases] = await Promise.all([from.deadLetters.page(DEAD_LETTERS_SHOWN_MAX), from.leases.list()]);
  const inFlight = from.payments.inFlight();
  const owners = new Map<string | null, ShardOwner>();
  for (const lease of leases) {
    const owner = owners.get(lease.owner) ?? { owner: lease.owner, shards: [], epoch_max: '0', lease_expires_at: null };
    owner.shards.push(lease.shard);
    if (lease.epoch > BigInt(owner.epoch_max)) owner.epoch_max = lease.epoch.toString();
    owner.lease_expires_at = lease.lease_expires_at?.toISOString() ?? owner.lease_expires_at;
    owners.set(lease.owner, owner);
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
