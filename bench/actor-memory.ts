import { execFileSync } from 'node:child_process';
import { Writable } from 'node:stream';
import nact from 'nact';
import { accountBehaviour, type AccountDeps } from '../engine/account-actor.ts';
import { stateFromStored } from '../engine/account-codec.ts';
import { createRegistry } from '../engine/registry.ts';
import { createLogger } from '../logger.ts';

// Where a live account actor's memory goes, part by part, without HTTP or Postgres: V8 heap used per
// item for 100,000 items of each part an actor is made of, then for whole actors of the real registry
// (engine/registry.ts) recovered from an in-memory snapshot. For bench/RESULTS.md's memory section.
// Usage: npx tsx bench/actor-memory.ts [count]

// Each part is measured in a process of its own, so that no part's garbage or lazy work lands in another's.
const [first = '', second] = process.argv.slice(2);
const PARTS = ['map', 'nact', 'state', 'behaviour', 'behaviour_shared_log', 'registry'] as const;
type Part = (typeof PARTS)[number];
const part = PARTS.find((p) => p === first);
const N = Number((part ? second : first) || 100_000);

const gc = (globalThis as { gc?: () => void }).gc;
async function heapUsed(): Promise<number> {
  gc!();
  await new Promise((resolve) => setTimeout(resolve, 100));
  gc!();
  return process.memoryUsage().heapUsed;
}

const silent = new Writable({ write: (_chunk, _encoding, done) => done() });
const log = createLogger('info', silent);
const snapshotOf = (user_id: string) => ({
  version: 1,
  user_id,
  seq: 2,
  balances: { USD: { available: '1234', held: '0' } },
  open: {},
});
const sharedLog = Object.assign(Object.create(log) as typeof log, { child: () => sharedLog });
const deps: AccountDeps = {
  journal: {
    append: () => Promise.resolve({ ok: true }),
    depth: () => 0,
    close: () => Promise.resolve(),
  } as unknown as AccountDeps['journal'],
  snapshots: {
    latest: (user_id: string) => Promise.resolve({ seq: 2, state: snapshotOf(user_id) }),
    save: () => Promise.resolve(),
  },
  readEvents: () => ({
    [Symbol.asyncIterator]: () => ({ next: () => Promise.resolve({ done: true as const, value: undefined }) }),
  }),
  ownership: { shards: 64, epochOf: () => 1n, lose: () => {}, owned: () => [] },
  snapshot_every_events: 100,
  log,
};

const depsSharedLog: AccountDeps = { ...deps, log: sharedLog };

const LABELS: Record<Part, string> = {
  map: 'a Map entry user_id → small object (as the registry map and its Entry)',
  nact: 'a nact actor (nact.spawn, no message yet)',
  state: 'an AccountState read from a snapshot (stateFromStored)',
  behaviour: 'accountBehaviour(user_id, deps) before its first message (its closures and its pino child)',
  // A pino child alone measures as nothing here (its few bytes drown in the heap's own movements), so
  // its cost is read as the difference between these two.
  behaviour_shared_log: 'the same, with a logger whose child() returns itself (no pino child per actor)',
  registry: 'a whole actor of engine/registry.ts, recovered from a snapshot by one read',
};

async function measurePart(which: Part): Promise<number> {
  const ids = Array.from({ length: N }, () => crypto.randomUUID());
  const system = nact.start();
  const registry = createRegistry({
    deps,
    idle_ms: 86_400_000,
    mailbox_max: 1000,
    batch_max: 256,
    ask_timeout_ms: 5000,
    log,
  });
  const before = await heapUsed();
  const kept: unknown[] = [];
  if (which === 'registry') {
    for (let from = 0; from < N; from += 1000) {
      await Promise.all(ids.slice(from, from + 1000).map((id) => registry.ask(id, { kind: 'read' })));
    }
    if (registry.alive() !== N) throw new Error(`${registry.alive()} actors alive`);
  } else {
    const map = new Map<string, unknown>();
    ids.forEach((id, i) => {
      if (which === 'map') map.set(id, { id, n: 0 });
      if (which === 'nact') kept.push(nact.spawn(system, (state: null) => state, `actor-${i}`, { initialState: null }));
      if (which === 'state') kept.push(stateFromStored(snapshotOf(id)));
      if (which === 'behaviour') kept.push(accountBehaviour(id, deps));
      if (which === 'behaviour_shared_log') kept.push(accountBehaviour(id, depsSharedLog));
    });
    kept.push(map);
  }
  const after = await heapUsed();
  // Keeps the ids (and what was built) alive until after the measure: only the parts are counted.
  if (ids.length !== N || (kept.length === 0 && registry.alive() === 0)) throw new Error('nothing kept');
  await registry.close();
  nact.stop(system);
  return Math.round((after - before) / N);
}

if (part) {
  if (!gc) throw new Error('run with node --expose-gc');
  console.log(JSON.stringify({ part, bytes: await measurePart(part) }));
} else {
  console.log(
    `V8 heap used per item, ${N} items of each part, each part in its own process (node ${process.version})\n`,
  );
  console.log('| part | bytes per item |\n| --- | ---: |');
  for (const which of PARTS) {
    const output = execFileSync('node', ['--expose-gc', '--import', 'tsx', 'bench/actor-memory.ts', which, String(N)]);
    const { bytes } = JSON.parse(output.toString()) as { bytes: number };
    console.log(`| ${LABELS[which]} | ${bytes} |`);
  }
}
