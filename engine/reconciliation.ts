import type {
  ReadModelTotalRow,
  ReconciliationReader,
  ReconciliationSnapshot,
} from '../persistence/reconciliation-reader.ts';
import { apply, emptyAccount, transactionAfter, type AccountState, type Event } from './account.ts';
import { eventFromStored } from './account-codec.ts';

/** One disagreement between the journal and another view of the same money. */
export interface Discrepancy {
  user_id: string;
  currency: string;
  check: string;
  journal: string;
  other: string;
}

export interface ReconciliationReport {
  users: number;
  events: number;
  discrepancies: Discrepancy[];
}

type Totals = Map<string, bigint>;

/**
 * Recomputes every account from the journal and compares it with the transactions read model
 * (balances and per-status totals) and with the live actors' state, when given.
 */
export function reconcile(reader: ReconciliationReader, options: ReconcileOptions = {}): Promise<ReconciliationReport> {
  // Both reads in one snapshot, so that live traffic cannot make them disagree.
  return reader.inSnapshot((snapshot) => reconcileSnapshot(snapshot, options));
}

interface ReconcileOptions {
  liveState?: (user_id: string) => Promise<AccountState | undefined>;
  page_size?: number;
}

async function reconcileSnapshot(
  snapshot: ReconciliationSnapshot,
  options: ReconcileOptions,
): Promise<ReconciliationReport> {
  const readModel = readModelTotals(await snapshot.readModelTotals());
  const report: ReconciliationReport = { users: 0, events: 0, discrepancies: [] };
  const seenUsers = new Set<string>();

  const finish = async (state: AccountState, totals: Totals) => {
    report.users += 1;
    seenUsers.add(state.user_id);
    compareTotals(
      state.user_id,
      totals,
      readModel.get(state.user_id) ?? new Map<string, bigint>(),
      report.discrepancies,
    );
    const live = await options.liveState?.(state.user_id);
    if (live) compareBalances(state, live, report.discrepancies);
  };

  let state: AccountState | undefined;
  let broken = false;
  let totals: Totals = new Map();
  let transactions = new Map<string, { key: string; amount: bigint }>();
  for await (const rows of snapshot.journal(options.page_size ?? 2000)) {
    for (const row of rows) {
      if (state?.user_id !== row.user_id) {
        if (state && !broken) await finish(state, totals);
        state = emptyAccount(row.user_id);
        broken = false;
        totals = new Map();
        transactions = new Map();
      }
      if (broken) continue;
      const event = readEvent(row.payload);
      if (!event || Number(row.seq) !== state.seq + 1) {
        // An account whose journal can't be replayed is reported, not guessed at.
        report.discrepancies.push({
          user_id: row.user_id,
          currency: '',
          check: 'journal unreadable',
          journal: `seq ${row.seq}`,
          other: '',
        });
        seenUsers.add(row.user_id);
        broken = true;
        continue;
      }
      const transaction = transactionAfter(state, event);
      const previous = transactions.get(transaction.id);
      if (previous) add(totals, previous.key, -previous.amount, -1n);
      const key = `${transaction.currency}|${transaction.type}|${transaction.status}`;
      add(totals, key, transaction.amount, 1n);
      transactions.set(transaction.id, { key, amount: transaction.amount });
      state = apply(state, event);
      addBalances(totals, state);
      report.events += 1;
    }
  }
  if (state && !broken) await finish(state, totals);
  for (const [user_id, totalsOfUser] of readModel) {
    if (!seenUsers.has(user_id)) compareTotals(user_id, new Map(), totalsOfUser, report.discrepancies);
  }
  return report;
}

function readEvent(payload: unknown): Event | undefined {
  try {
    return eventFromStored(payload);
  } catch {
    return undefined;
  }
}

function add(totals: Totals, key: string, amount: bigint, count: bigint): void {
  totals.set(`${key}|sum`, (totals.get(`${key}|sum`) ?? 0n) + amount);
  totals.set(`${key}|count`, (totals.get(`${key}|count`) ?? 0n) + count);
}

function addBalances(totals: Totals, state: AccountState): void {
  for (const [currency, balance] of Object.entries(state.balances)) {
    totals.set(`${currency}|balance|available`, balance.available);
    totals.set(`${currency}|balance|held`, balance.held);
  }
}

/** Per user: sums and counts by currency, type and status, and the balances the contract derives from them. */
function readModelTotals(rows: readonly ReadModelTotalRow[]): Map<string, Totals> {
  const byUser = new Map<string, Totals>();
  for (const row of rows) {
    const totals = byUser.get(row.user_id) ?? new Map<string, bigint>();
    byUser.set(row.user_id, totals);
    totals.set(`${row.currency}|${row.type}|${row.status}|sum`, row.total);
    totals.set(`${row.currency}|${row.type}|${row.status}|count`, row.n);
    const sign = row.type === 'deposit' ? 1n : -1n;
    const open = row.status === 'pending' || row.status === 'processing';
    const availableKey = `${row.currency}|balance|available`;
    if (row.status === 'succeeded' || (open && row.type === 'withdrawal')) {
      totals.set(availableKey, (totals.get(availableKey) ?? 0n) + sign * row.total);
    } else totals.set(availableKey, totals.get(availableKey) ?? 0n);
    const heldKey = `${row.currency}|balance|held`;
    totals.set(heldKey, (totals.get(heldKey) ?? 0n) + (open && row.type === 'withdrawal' ? row.total : 0n));
  }
  return byUser;
}

function compareTotals(user_id: string, journal: Totals, readModel: Totals, out: Discrepancy[]): void {
  for (const key of new Set([...journal.keys(), ...readModel.keys()])) {
    const [currency = '', ...check] = key.split('|');
    const fromJournal = journal.get(key) ?? 0n;
    const fromReadModel = readModel.get(key) ?? 0n;
    if (fromJournal !== fromReadModel) {
      out.push({
        user_id,
        currency,
        check: `read_model ${check.join(' ')}`,
        journal: String(fromJournal),
        other: String(fromReadModel),
      });
    }
  }
}

function compareBalances(journal: AccountState, live: AccountState, out: Discrepancy[]): void {
  // A live actor that committed after the snapshot was read is newer, not wrong: compare like with like.
  if (live.seq > journal.seq) return;
  if (live.seq < journal.seq) {
    out.push({
      user_id: journal.user_id,
      currency: '',
      check: 'actor seq',
      journal: String(journal.seq),
      other: String(live.seq),
    });
    return;
  }
  for (const currency of new Set([...Object.keys(journal.balances), ...Object.keys(live.balances)])) {
    for (const field of ['available', 'held'] as const) {
      const a = journal.balances[currency]?.[field] ?? 0n;
      const b = live.balances[currency]?.[field] ?? 0n;
      if (a !== b) {
        out.push({ user_id: journal.user_id, currency, check: `actor ${field}`, journal: String(a), other: String(b) });
      }
    }
  }
}
