import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Gateway } from '../gateway.ts';
import { ADMIN_KEY, client, createUser, fund, startTestGateway } from './support/gateway.ts';
import { eventually } from './support/time.ts';

const folder = mkdtempSync(join(tmpdir(), 'pgw-repl-'));
const socket = join(folder, 'repl.sock');
let gateway: Gateway;

before(async () => {
  gateway = await startTestGateway({ REPL_SOCKET: socket });
});
after(async () => {
  await gateway.close();
  rmSync(folder, { recursive: true, force: true });
});

/** `npm run repl`'s program, driven through its stdin the way a person at a terminal would. */
function startRepl(): {
  child: ChildProcessWithoutNullStreams;
  type(line: string): void;
  expect(pattern: RegExp): Promise<string>;
} {
  const env: NodeJS.ProcessEnv = { ...process.env, REPL_SOCKET: socket };
  delete env.ADMIN_API_KEY;
  delete env.INSTANCE_ID;
  const child = spawn('node', ['--import', 'tsx', 'cli/repl.ts'], { env });
  let output = '';
  let read = 0;
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  return {
    child,
    type: (line) => child.stdin.write(`${line}\n`),
    /** Waits for `pattern` in what was printed since the last match, and returns that stretch. */
    async expect(pattern) {
      const unread = () => output.slice(read);
      const stretch = await eventually(() => {
        const match = pattern.exec(unread());
        if (!match && child.exitCode !== null) assert.fail(`the REPL exited; expected ${pattern} in:\n${unread()}`);
        return match ? unread().slice(0, match.index + match[0].length) : undefined;
      }, 15_000).catch((error: unknown) => assert.fail(`expected ${pattern} in:\n${unread()}\n(${String(error)})`));
      read += stretch.length;
      return stretch;
    },
  };
}

test('npm run repl: the admin key first, then an actor, the shards, payments, dead letters, reconcile, quit', async () => {
  const request = client(gateway.url);
  const user = await createUser(request, 'Repl');
  await fund(gateway, request, user, 4200);

  const repl = startRepl();
  await repl.expect(/admin key: $/);
  repl.type('not_the_admin_key_0000');
  await repl.expect(/refused: wrong admin key\n/);
  await repl.expect(/admin key: $/);
  repl.type(ADMIN_KEY);
  await repl.expect(/connected to .+; type help\n/);

  await repl.expect(/pgw> $/);
  repl.type(`actor ${user.id}`);
  const actor = JSON.parse((await repl.expect(/\n}\n/)).trim());
  assert.equal(actor.user_id, user.id);
  assert.deepEqual(actor.balances, { USD: { available: '4200', held: '0' } });
  assert.equal(actor.seq, 2);
  assert.equal(actor.open_count, 0);
  // The admin's creation of the user (its response, 201) and fund()'s deposit with the user's own key
  // (the account's outcome: accepted).
  const records = actor.idempotency_records.map((r: { caller: string; answer: string }) => [r.caller, r.answer]);
  assert.deepEqual(
    records.sort(),
    [
      ['admin', '201'],
      [user.id, 'accepted'],
    ].sort(),
  );
  assert.equal(actor.alive_before_this_read, true);
  assert.equal(actor.owned_here, true);

  await repl.expect(/pgw> $/);
  // The shard table from the leases in Redis: the owner, its epochs, its earliest lease expiry (a time
  // to come, renewed every third of the lease) and the actors it reports alive (the user's, at least;
  // its count reaches Redis with the next renewal, hence a few tries).
  const ownRow = /\(this instance\)\s+64\s+0-63\s+(\d+)\.\.(\d+)\s+(\S+)\s+(\S+)\n/;
  await eventually(async () => {
    const asked_at = Date.now();
    repl.type('shards');
    const shards = await repl.expect(/pgw> $/);
    assert.match(shards, /owns 64 of 64 shards/);
    assert.match(shards, /owner\s+count\s+shards\s+epochs\s+lease expires\s+actors\n/);
    const row = ownRow.exec(shards);
    assert.ok(row, `a row for this instance in:\n${shards}`);
    const [, epochMin, epochMax, expires, actors] = row;
    assert.ok(BigInt(epochMin!) >= 1n && BigInt(epochMin!) <= BigInt(epochMax!));
    assert.match(expires!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.ok(Date.parse(expires!) > asked_at, `the lease expiry ${expires} is to come`);
    assert.match(actors!, /^\d+$/);
    // The actors alive on this instance are counted.
    return Number(actors) >= 1 ? true : undefined;
  }, 5000);

  repl.type('actors');
  assert.match(await repl.expect(/pgw> $/), /\d+ actors alive, 0 requests in their mailboxes/);
  repl.type('payments');
  assert.match(await repl.expect(/pgw> $/), /no payment in flight|in flight/);
  repl.type('dead-letters');
  assert.match(await repl.expect(/pgw> $/), /no dead letters|reason/);
  repl.type(`reconcile ${user.id}`);
  assert.match(await repl.expect(/pgw> $/), new RegExp(`no discrepancies for ${user.id} \\(checked \\d+ accounts`));
  repl.type('actor not-a-user');
  assert.match(await repl.expect(/pgw> $/), /error: give a user id/);
  repl.type('drop tables');
  assert.match(await repl.expect(/pgw> $/), /error: unknown command "drop"; type help/);
  repl.type('help');
  assert.match(await repl.expect(/pgw> $/), /reconcile <user_id>/);

  repl.type('quit');
  await repl.expect(/bye\n/);
  const [code] = (await once(repl.child, 'exit')) as [number];
  assert.equal(code, 0);
});

test('npm run repl gives up once the gateway closes after three wrong keys', async () => {
  const repl = startRepl();
  for (let attempt = 1; attempt <= 3; attempt += 1) {
    await repl.expect(/admin key: $/);
    repl.type(`wrong_key_number_${attempt}_000000`);
    await repl.expect(/refused: wrong admin key\n/);
  }
  await repl.expect(/The gateway closed the connection/);
  const [code] = (await once(repl.child, 'exit')) as [number];
  assert.equal(code, 1);
});
