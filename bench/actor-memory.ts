import { execFileSync } from 'node:child_process';
import { Writable } from 'node:stream';
import nact from 'nact';
import { loadConfig } from '../config.ts';
import { accountBehaviour, type AccountDeps } from '../engine/account-actor.ts';
import { stateFromStored, stateToStored } from '../engine/account-codec.ts';
import { openTransactions } from '../engine/account.ts';
import { createAccounts } from '../engine/engine.ts';
import type { Ownership } from '../engine/shards.ts';
import { createLogger } from '../logger.ts';
import { createSql } from '../persistence/sql.ts';

// Where a live account actor's memory goes, part by part, without HTTP: V8 heap used per item for
// 100,000 items of each part an actor is made of, then for whole actors built by the engine's own
// factory (engine/engine.ts createAccounts: its journal, registry and deps, as test/support/engine.ts
// builds them) and recovered from a snapshot the engine's codec wrote, kept in memory here (no query is
// made: recovery reads the snapshot and an empty journal tail). For the whole actors the RSS per actor
// is reported too. For bench/RESULTS.md's memory section.
// Usage: npx tsx bench/actor-memory.ts [count]

// Each part is measured in a process of its own, so that no part's garbage or lazy work lands in another's.
const [first = '', second] = process.argv.slice(2);
const PARTS = ['map', 'nact', 'state', 'behaviour', 'registry'] as const;
type Part = (typeof PARTS)[number];
const part = PARTS.find((p) => p === first);
const N = Number((part ? second : first) || 100_000);

const gc = (globalThis as { gc?: () => void }).gc;
async function collect(): Promise<NodeJS.MemoryUsage> {
  gc!();
  await new Promise((resolve) => setTimeout(resolve, 100));
  gc!();
  return process.memoryUsage();
}

const silent = new Writable({ write: (_chunk, _encoding, done) => done() });
const log = createLogger('info', silent);
// A snapshot as the engine writes one (its codec, the current version): one settled deposit.
const snapshotOf = (user_id: string) =>
  stateToStored({
    user_id,
    seq: 2,
    balances: { USD: { available: 1234n, held: 0n } },
    open: openTransactions(),
    incoming: {},
  });
const SHARDS = 64;
const ownership: Ownership = {
  shards: SHARDS,
  epochOf: () => 1n,
  lose: () => {},
  owned: () => Array.from({ length: SHARDS }, (_, shard) => shard),
};

/** The engine's account core, as the gateway builds it, with the snapshots and the journal tail in memory. */
function engineAccounts() {
  // Never connected to: the actors only read, and their reads are the two functions below.
  const sql = createSql('postgres://postgres@127.0.0.1:9/unused', { pool_max: 1, application_name: 'actor-memory' });
  const core = createAccounts({
    settings: { ...loadConfig({}), ACTOR_IDLE_MS: 86_400_000, ACTORS_LIVE_MAX: Math.max(N, 1) },
    sql,
    snapshots: {
      latest: (user_id: string) => Promise.resolve({ seq: 2, state: snapshotOf(user_id) }),
      save: () => Promise.resolve(),
    },
    ownership,
    log,
    readEvents: () => ({
      [Symbol.asyncIterator]: () => ({ next: () => Promise.resolve({ done: true as const, value: undefined }) }),
    }),
  });
  return {
    ...core,
    async close() {
      await core.close();
      await sql.end({ timeout: 1 });
    },
  };
}

const LABELS: Record<Part, string> = {
  map: 'a Map entry user_id → small object (as the registry map and its Entry)',
  nact: 'a nact actor (nact.spawn, no message yet)',
  state: 'an AccountState read from a snapshot (stateFromStored)',
  behaviour: 'accountBehaviour(user_id, deps) before its first message (a class instance: a few fields)',
  registry: 'a whole actor of the engine (createAccounts), recovered from a snapshot by one read',
};

interface Measure {
  heap_bytes: number;
  rss_bytes: number;
}

async function measurePart(which: Part): Promise<Measure> {
  const ids = Array.from({ length: N }, () => crypto.randomUUID());
  const system = nact.start();
  const core = engineAccounts();
  const deps: AccountDeps = core.deps;
  const registry = core.accounts;
  const before = await collect();
  const kept: unknown[] = [];
  if (which === 'registry') {
    for (let from = 0; from < N; from += 1000) {
      const replies = await Promise.all(ids.slice(from, from + 1000).map((id) => registry.ask(id, { kind: 'read' })));
      if (replies.some((reply) => reply.kind !== 'state')) throw new Error('an actor did not recover');
    }
    if (registry.alive() !== N) throw new Error(`${registry.alive()} actors alive`);
  } else {
    const map = new Map<string, unknown>();
    ids.forEach((id, i) => {
      if (which === 'map') map.set(id, { id, n: 0 });
      if (which === 'nact') kept.push(nact.spawn(system, (state: null) => state, `actor-${i}`, { initialState: null }));
      if (which === 'state') kept.push(stateFromStored(snapshotOf(id)));
      if (which === 'behaviour') kept.push(accountBehaviour(id, deps));
    });
    kept.push(map);
  }
  const after = await collect();
  // Keeps the ids (and what was built) alive until after the measure: only the parts are counted.
  if (ids.length !== N || (kept.length === 0 && registry.alive() === 0)) throw new Error('nothing kept');
  await core.close();
  nact.stop(system);
  return {
    heap_bytes: Math.round((after.heapUsed - before.heapUsed) / N),
    rss_bytes: Math.round((after.rss - before.rss) / N),
  };
}

if (part) {
  if (!gc) throw new Error('run with node --expose-gc');
  console.log(JSON.stringify({ part, ...(await measurePart(part)) }));
} else {
  console.log(
    `V8 heap used per item, ${N} items of each part, each part in its own process (node ${process.version}); ` +
      `RSS per item beside it (the process grows its heap as it sees fit)\n`,
  );
  console.log('| part | heap bytes per item | RSS bytes per item |\n| --- | ---: | ---: |');
  for (const which of PARTS) {
    const output = execFileSync('node', ['--expose-gc', '--import', 'tsx', 'bench/actor-memory.ts', which, String(N)]);
    const { heap_bytes, rss_bytes } = JSON.parse(output.toString()) as Measure;
    console.log(`| ${LABELS[which]} | ${heap_bytes} | ${rss_bytes} |`);
  }
}
