import { z } from 'zod';
import { reconcile } from '../engine/reconciliation.ts';
import type { Payments } from '../engine/payments.ts';
import type { Registry } from '../engine/registry.ts';
import type { ShardLeases } from '../engine/shard-leases.ts';
import { shardOf, type Ownership } from '../engine/shards.ts';
import type { DeadLetterStore } from '../persistence/dead-letters.ts';
import type { IdempotencyStore } from '../persistence/idempotency.ts';
import type { ReconciliationReader } from '../persistence/reconciliation-reader.ts';

/** What the REPL's commands read. */
export interface ReplCommandDeps {
  instance: string;
  /** The journal and the read model in one snapshot, for `reconcile`. */
  reconciliation: ReconciliationReader;
  /** Idempotency records live in Postgres, not in the actor: the `actor` command reads them there. */
  idempotency: Pick<IdempotencyStore, 'recentForUser'>;
  accounts: Pick<Registry, 'ask' | 'isAlive' | 'alive' | 'mailboxDepth'>;
  payments: Pick<Payments, 'inFlight'>;
  deadLetters: Pick<DeadLetterStore, 'page'>;
  /** Every shard's lease holder and expiry (Redis), epoch (Postgres) and actors alive. */
  shardTable: ShardLeases['table'];
  ownership: Pick<Ownership, 'owned' | 'shards' | 'epochOf'>;
}

/** What a command answers: text for the operator, or why it could not. */
export type ReplAnswer = { ok: true; output: string } | { ok: false; error: string };

interface Command {
  usage: string;
  summary: string;
  run(args: string[]): Promise<ReplAnswer>;
}

// Bounds on what one answer lists, so that a busy instance still answers in a screenful or two.
const OPEN_SHOWN_MAX = 50;
const IDEMPOTENCY_SHOWN_MAX = 20;
const PAYMENTS_SHOWN_MAX = 50;
const DEAD_LETTERS_SHOWN_MAX = 20;

const userId = z.uuid();
const done = (output: string): ReplAnswer => ({ ok: true, output });
const failed = (error: string): ReplAnswer => ({ ok: false, error });

/** The admin REPL's commands over this instance's live parts; `quit` and `auth` belong to the connection. */
export function createReplCommands(deps: ReplCommandDeps) {
  const commands: Record<string, Command> = {
    help: { usage: 'help', summary: 'this list', run: () => Promise.resolve(done(help())) },
    actor: { usage: 'actor <user_id>', summary: "an account actor's live state", run: withUser(actor) },
    actors: {
      usage: 'actors',
      summary: 'actors alive and requests waiting in their mailboxes',
      run: () =>
        Promise.resolve(
          done(`${deps.accounts.alive()} actors alive, ${deps.accounts.mailboxDepth()} requests in their mailboxes`),
        ),
    },
    shards: { usage: 'shards', summary: 'the shard table: owners, epochs, leases', run: shards },
    payments: { usage: 'payments', summary: 'payments being driven against the bank', run: payments },
    'dead-letters': { usage: 'dead-letters', summary: 'the latest dead letters', run: deadLetters },
    reconcile: {
      usage: 'reconcile <user_id>',
      summary: "replay the journal and print this user's discrepancies",
      run: withUser(reconcileUser),
    },
  };

  function help(): string {
    const lines = [...Object.values(commands).map((c) => [c.usage, c.summary]), ['quit', 'leave']];
    return table(['command', 'what it does'], lines);
  }

  function withUser(run: (user_id: string) => Promise<ReplAnswer>): (args: string[]) => Promise<ReplAnswer> {
    return (args) => {
      const parsed = userId.safeParse(args[0]);
      return parsed.success ? run(parsed.data) : Promise.resolve(failed('give a user id (a UUID)'));
    };
  }

  async function actor(user_id: string): Promise<ReplAnswer> {
    const alive = deps.accounts.isAlive(user_id);
    const shard = shardOf(user_id, deps.ownership.shards);
    const reply = await deps.accounts.ask(user_id, { kind: 'read' });
    if (reply.kind !== 'state')
      return failed(`the actor did not answer: ${reply.kind === 'refused' ? reply.reason : 'no state'}`);
    const { state } = reply;
    const open = [...state.open.values()];
    const records = await deps.idempotency.recentForUser(user_id, IDEMPOTENCY_SHOWN_MAX);
    return done(
      json({
        user_id,
        shard,
        owned_here: deps.ownership.epochOf(shard) !== undefined,
        // Reading wakes a passivated actor (it recovers from its snapshot and journal); this says which it was.
        alive_before_this_read: alive,
        seq: state.seq,
        balances: state.balances,
        open_count: open.length,
        open: open.slice(0, OPEN_SHOWN_MAX),
        idempotency_records: records,
      }),
    );
  }

  async function shards(): Promise<ReplAnswer> {
    const { shards: rows } = await deps.shardTable();
    const owners = new Map<
      string,
      { shards: number[]; epochs: bigint[]; expires: string | null; actors: number | null }
    >();
    for (const row of rows) {
      const owner = row.owner ?? '(nobody)';
      const entry = owners.get(owner) ?? { shards: [], epochs: [], expires: null, actors: null };
      entry.shards.push(row.shard);
      entry.epochs.push(BigInt(row.epoch));
      // The earliest expiry: the owner's leases are renewed together, the first to lapse is the one to watch.
      if (
        row.lease_expires_at !== null &&
        (entry.expires === null || Date.parse(row.lease_expires_at) < Date.parse(entry.expires))
      )
        entry.expires = row.lease_expires_at;
      if (row.actors_alive !== null) entry.actors = (entry.actors ?? 0) + row.actors_alive;
      owners.set(owner, entry);
    }
    const rowsShown = [...owners].map(([owner, entry]) => [
      owner === deps.instance ? `${owner} (this instance)` : owner,
      String(entry.shards.length),
      ranges(entry.shards),
      `${min(entry.epochs)}..${max(entry.epochs)}`,
      entry.expires ?? '-',
      entry.actors === null ? '-' : String(entry.actors),
    ]);
    const summary = `${deps.instance} owns ${deps.ownership.owned().length} of ${deps.ownership.shards} shards`;
    const header = ['owner', 'count', 'shards', 'epochs', 'lease expires', 'actors'];
    return done(`${summary}\n${table(header, rowsShown)}`);
  }

  function payments(): Promise<ReplAnswer> {
    const inFlight = deps.payments.inFlight();
    if (inFlight.length === 0) return Promise.resolve(done('no payment in flight'));
    const rows = inFlight
      .slice(0, PAYMENTS_SHOWN_MAX)
      .map((p) => [
        p.transaction_id,
        p.user_id,
        p.type,
        `${p.amount} ${p.currency}`,
        p.phase,
        String(p.attempts),
        String(p.polls),
        p.next_at ?? '',
        p.last_error ?? '',
      ]);
    const header = ['transaction', 'user', 'type', 'amount', 'phase', 'attempts', 'polls', 'next at', 'last error'];
    return Promise.resolve(done(`${inFlight.length} in flight\n${table(header, rows)}`));
  }

  async function deadLetters(): Promise<ReplAnswer> {
    const letters = await deps.deadLetters.page(DEAD_LETTERS_SHOWN_MAX);
    if (letters.length === 0) return done('no dead letters');
    const rows = letters.map((d) => [
      d.id,
      d.transaction_id,
      d.user_id,
      String(d.attempts),
      d.created_at.toISOString(),
      d.retried_at?.toISOString() ?? 'open',
      d.reason,
    ]);
    return done(table(['id', 'transaction', 'user', 'attempts', 'filed', 'retried', 'reason'], rows));
  }

  async function reconcileUser(user_id: string): Promise<ReplAnswer> {
    const report = await reconcile(deps.reconciliation, {
      liveState: async (id) => {
        if (!deps.accounts.isAlive(id)) return undefined;
        const reply = await deps.accounts.ask(id, { kind: 'read' });
        return reply.kind === 'state' ? reply.state : undefined;
      },
    });
    const found = report.discrepancies.filter((d) => d.user_id === user_id);
    const checked = `checked ${report.users} accounts, ${report.events} events`;
    if (found.length === 0) return done(`no discrepancies for ${user_id} (${checked})`);
    const rows = found.map((d) => [d.currency, d.check, d.journal, d.other]);
    return done(
      `${found.length} discrepancies for ${user_id} (${checked})\n${table(['currency', 'check', 'journal', 'other'], rows)}`,
    );
  }

  return {
    /** Runs one command line. */
    async run(line: string): Promise<ReplAnswer> {
      const [name = '', ...args] = line.trim().split(/\s+/);
      const command = Object.hasOwn(commands, name) ? commands[name] : undefined;
      if (!command) return failed(`unknown command "${name}"; type help`);
      return command.run(args);
    },
  };
}

export type ReplCommands = ReturnType<typeof createReplCommands>;

/** JSON for people: indented, bigints (money) as decimal strings. */
function json(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2);
}

/** Columns padded to their widest cell. */
function table(header: string[], rows: string[][]): string {
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => (row[i] ?? '').length)));
  return [header, ...rows]
    .map((row) =>
      row
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** 0,1,2,3,7,8 → "0-3,7-8". */
function ranges(numbers: number[]): string {
  const sorted = [...numbers].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; i += 1) {
    const start = sorted[i]!;
    while (sorted[i + 1] === sorted[i]! + 1) i += 1;
    parts.push(start === sorted[i] ? `${start}` : `${start}-${sorted[i]}`);
  }
  return parts.join(',');
}

const min = (values: bigint[]) => values.reduce((a, b) => (b < a ? b : a));
const max = (values: bigint[]) => values.reduce((a, b) => (b > a ? b : a));
