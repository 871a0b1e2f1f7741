import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { createLogger } from '../logger.ts';
import { startReplServer } from './repl-server.ts';

const ADMIN_KEY = 'repl_test_admin_key_0123';
const folder = mkdtempSync(join(tmpdir(), 'pgw-repl-server-'));
after(() => rmSync(folder, { recursive: true, force: true }));

let sockets = 0;
function start(socket_path = join(folder, `${(sockets += 1)}.sock`)) {
  return startReplServer({
    socket_path,
    admin_key: ADMIN_KEY,
    instance: 'test-instance',
    log: createLogger('silent'),
    commands: {
      run: (line) => {
        if (line === 'explode') return Promise.reject(new Error('the database is down'));
        return Promise.resolve({ ok: true, output: `ran ${line}` });
      },
    },
  });
}

/** A raw protocol client: one line out, one JSON answer back (undefined once the server closed). */
async function open(path: string): Promise<{ send(line: string): Promise<any>; next(): Promise<any>; socket: Socket }> {
  const socket = connect(path);
  await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  let buffered = '';
  const answers: any[] = [];
  const waiting: ((answer: any) => void)[] = [];
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    buffered += chunk;
    for (let i = buffered.indexOf('\n'); i >= 0; i = buffered.indexOf('\n')) {
      const answer = JSON.parse(buffered.slice(0, i));
      buffered = buffered.slice(i + 1);
      const next = waiting.shift();
      if (next) next(answer);
      else answers.push(answer);
    }
  });
  let closed = false;
  socket.on('close', () => {
    closed = true;
    waiting.splice(0).forEach((resolve) => resolve(undefined));
  });
  const next = () =>
    new Promise((resolve) => {
      if (answers.length > 0 || closed) resolve(answers.shift());
      else waiting.push(resolve);
    });
  return {
    socket,
    next,
    send(line) {
      socket.write(`${line}\n`);
      return next();
    },
  };
}

test('listens on a socket only its owner may open, and removes it on close', async () => {
  const repl = await start();
  assert.equal(statSync(repl.path).mode & 0o777, 0o600);
  await repl.close();
  assert.throws(() => statSync(repl.path), { code: 'ENOENT' });
});

test('refuses every command until the admin key matches, and hangs up after three wrong keys', async () => {
  const repl = await start();
  try {
    const client = await open(repl.path);
    assert.deepEqual(await client.send('shards'), { ok: false, error: 'send "auth <admin key>" first' });
    assert.deepEqual(await client.send('quit'), { ok: false, error: 'send "auth <admin key>" first' });
    assert.deepEqual(await client.send(`auth ${ADMIN_KEY}x`), { ok: false, error: 'wrong admin key' });
    assert.deepEqual(await client.send('auth'), { ok: false, error: 'wrong admin key' });
    assert.deepEqual(await client.send(`auth ${ADMIN_KEY.slice(0, -1)}`), { ok: false, error: 'wrong admin key' });
    assert.equal(await client.send(`auth ${ADMIN_KEY}`), undefined, 'the connection is closed');
  } finally {
    await repl.close();
  }
});

test('once authenticated: runs commands in order, reports a failing one, and says bye to quit', async () => {
  const repl = await start();
  try {
    const client = await open(repl.path);
    assert.deepEqual(await client.send(`auth ${ADMIN_KEY}`), {
      ok: true,
      output: 'connected to test-instance; type help',
    });
    const answers = await Promise.all([client.send('one'), client.send('two'), client.send('explode')]);
    assert.deepEqual(answers, [
      { ok: true, output: 'ran one' },
      { ok: true, output: 'ran two' },
      { ok: false, error: 'failed: the database is down' },
    ]);
    assert.deepEqual(await client.send('quit'), { ok: true, output: 'bye' });
    assert.equal(await client.send('one'), undefined);
  } finally {
    await repl.close();
  }
});

test('hangs up on a line over 4096 characters, with or without its end', async () => {
  const repl = await start();
  try {
    const tooLong = { ok: false, error: 'a line may be at most 4096 characters' };
    const unended = await open(repl.path);
    unended.socket.write('x'.repeat(5000));
    assert.deepEqual(await unended.next(), tooLong);
    assert.equal(await unended.next(), undefined);
    const ended = await open(repl.path);
    assert.deepEqual(await ended.send(`auth ${'x'.repeat(5000)}`), tooLong);
    assert.equal(await ended.next(), undefined);
  } finally {
    await repl.close();
  }
});

test('at start, replaces a socket a killed process left behind, but not a live socket or another file', async () => {
  const stale = join(folder, 'stale.sock');
  // A process that listens and dies at once leaves its socket file behind.
  const script = `require('node:net').createServer().listen(${JSON.stringify(stale)}, () => process.kill(process.pid, 'SIGKILL'))`;
  spawnSync(process.execPath, ['-e', script]);
  assert.ok(statSync(stale).isSocket());
  const repl = await start(stale);
  try {
    await assert.rejects(start(stale), /another process listens on .*stale\.sock/);
  } finally {
    await repl.close();
  }
  const file = join(folder, 'not-a-socket');
  writeFileSync(file, 'precious');
  await assert.rejects(start(file), /exists and is not a socket/);
  assert.equal(statSync(file).size, 'precious'.length);
});
