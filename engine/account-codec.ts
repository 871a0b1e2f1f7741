import { z } from 'zod';
import {
  CAUSES,
  incomingOf,
  openTransactions,
  TRANSACTION_STATUSES,
  TRANSACTION_TYPES,
  type AccountState,
  type Event,
  type Outcome,
  type Transaction,
} from './account.ts';
import { REJECTION_CODES } from './rejections.ts';
import type { Assert, Same } from './same-type.ts';

// How account events and states look at rest (journal payloads, snapshots): bigints as decimal
// strings. Reading validates every field, so a corrupt row is refused rather than half-applied.

const amount = z
  .string()
  .regex(/^-?\d{1,19}$/)
  .transform((value) => BigInt(value));
const cause = z.enum(CAUSES);
const failure = z.object({ code: z.string(), message: z.string() });
const stamp = { at: z.string(), cause, request_id: z.string().nullable() };

const transaction = z.object({
  id: z.string(),
  user_id: z.string(),
  type: z.enum(TRANSACTION_TYPES),
  amount,
  currency: z.string(),
  status: z.enum(TRANSACTION_STATUSES),
  description: z.string().nullable(),
  metadata: z.record(z.string(), z.string()).nullable(),
  failure: failure.nullable(),
  bank_reference: z.string().nullable(),
  attempts: z.number().int().nonnegative(),
  request_id: z.string().nullable(),
  created_at: z.string(),
  updated_at: z.string(),
  completed_at: z.string().nullable(),
});
// A field added to Transaction (or the schema) alone fails to compile here.
type _TransactionRead = Assert<Same<z.output<typeof transaction>, Transaction>>;

const event = z.discriminatedUnion('type', [
  z.object({ type: z.literal('transaction_created'), transaction }),
  z.object({
    type: z.literal('transaction_processing'),
    transaction_id: z.string(),
    bank_reference: z.string(),
    attempts: z.number().int(),
    ...stamp,
  }),
  z.object({
    type: z.literal('attempt_failed'),
    transaction_id: z.string(),
    attempts: z.number().int(),
    error: z.string(),
    ...stamp,
  }),
  z.object({ type: z.literal('retry_requested'), transaction_id: z.string(), ...stamp }),
  z.object({
    type: z.literal('transaction_succeeded'),
    transaction_id: z.string(),
    attempts: z.number().int().optional(),
    bank_reference: z.string().optional(),
    ...stamp,
  }),
  z.object({
    type: z.literal('transaction_failed'),
    transaction_id: z.string(),
    failure,
    attempts: z.number().int().optional(),
    bank_reference: z.string().optional(),
    ...stamp,
  }),
]);
type _EventRead = Assert<Same<z.output<typeof event>, Event>>;

// Version 2 added `incoming` (the open deposits' sum per currency). A version 1 snapshot, written before,
// still loads: its `incoming` is summed from its open transactions.
const SNAPSHOT_VERSION = 2;
const stateV1 = z.object({
  version: z.literal(1),
  user_id: z.string(),
  seq: z.number().int().nonnegative(),
  balances: z.record(z.string(), z.object({ available: amount, held: amount })),
  open: z.record(z.string(), transaction),
});
const state = z.discriminatedUnion('version', [
  stateV1,
  stateV1.extend({ version: z.literal(SNAPSHOT_VERSION), incoming: z.record(z.string(), amount) }),
]);

/** JSON-safe copy of a value, bigints as strings (once per journaled event: a plain loop, no entry arrays). */
export function toStored(value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map(toStored);
  const copy: Record<string, unknown> = {};
  for (const key of Object.keys(value)) {
    const stored = toStored((value as Record<string, unknown>)[key]);
    // A `__proto__` key (client metadata may hold one) must stay a key, not become a prototype.
    if (key === '__proto__') Object.defineProperty(copy, key, { value: stored, enumerable: true, writable: true });
    else copy[key] = stored;
  }
  return copy;
}

/** An event read back from the journal; throws on a payload that is not a valid event. */
export function eventFromStored(payload: unknown): Event {
  return event.parse(payload);
}

/** A state as a snapshot stores it. */
export function stateToStored(account: AccountState): unknown {
  return toStored({ version: SNAPSHOT_VERSION, ...account, open: Object.fromEntries(account.open) });
}

/**
 * A state read back from a snapshot (version 1 or 2), or undefined when the snapshot is corrupt, of an
 * unknown version, or its `incoming` disagrees with its open transactions.
 */
export function stateFromStored(stored: unknown): AccountState | undefined {
  const parsed = state.safeParse(stored);
  if (!parsed.success) return undefined;
  const { user_id, seq, balances } = parsed.data;
  const entries = Object.entries(parsed.data.open);
  if (entries.some(([id, transaction]) => id !== transaction.id)) return undefined;
  const open = openTransactions(entries.map(([, transaction]) => transaction));
  const incoming = incomingOf(open);
  if (parsed.data.version === SNAPSHOT_VERSION) {
    const kept = parsed.data.incoming;
    const currencies = new Set([...Object.keys(kept), ...Object.keys(incoming)]);
    if ([...currencies].some((currency) => kept[currency] !== incoming[currency])) return undefined;
  }
  return { user_id, seq, balances, open, incoming };
}

/** A transaction sent as `toStored` wrote it (the live feed across instances); throws when invalid. */
export function transactionFromStored(value: unknown): Transaction {
  return transaction.parse(value);
}

// What a command with an idempotency key came to, kept with its key: a value, never a rendered
// response (the edge renders it, for the first answer and every replay). `note` is whatever JSON the
// edge handed in with the command to answer a replay with; the engine only keeps it.
const storedOutcome = z.object({
  outcome: z.discriminatedUnion('kind', [
    z.object({ kind: z.literal('accepted'), transaction }),
    z.object({ kind: z.literal('rejected'), code: z.enum(REJECTION_CODES) }),
    z.object({ kind: z.literal('noop'), reason: z.literal('not_open') }),
  ]),
  request_id: z.string().nullable(),
  note: z.unknown().optional(),
});

/** A command's outcome as its idempotency record keeps it. */
export interface KeptOutcome {
  outcome: Outcome;
  /** The id of the request that ran the command. */
  request_id: string | null;
  note?: unknown;
}

/** A kept outcome as stored (JSON-safe). */
export function outcomeToStored(kept: KeptOutcome): unknown {
  return toStored(kept);
}

/** A kept outcome read back; throws when the stored value is not one. */
export function outcomeFromStored(stored: unknown): KeptOutcome {
  return storedOutcome.parse(stored);
}
