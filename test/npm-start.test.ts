import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createRedis } from '../persistence/redis.ts';
import { testDatabaseUrl } from './support/database.ts';
import { ADMIN_KEY } from './support/gateway.ts';
import { freePort } from './support/process.ts';
import { eventually, scaled } from './support/time.ts';

// The machine is shared: every limit below is a generous multiple of what an idle machine needs.
// On a quiet machine; `eventually` scales them, and so does every other wait below.
const START_MS_MAX = 30_000;
const STOP_MS_MAX = 20_000;
const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));

/** Whether a process runs (an exited one its parent has not reaped yet does not). */
function running(pid: number): boolean {
  try {
    return !execFileSync('ps', ['-o', 'stat=', '-p', String(pid)], { encoding: 'utf8' }).startsWith('Z');
  } catch {
    return false; // ps exits 1 when there is no such process.
  }
}

/** Deletes the keys a gateway kept under `prefix` (one killed rather than stopped leaves its registration). */
async function deleteKeys(prefix: string): Promise<void> {
  const redis = createRedis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', 'npm-start-test');
  try {
    await once(redis, 'ready');
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
  } finally {
    redis.disconnect();
  }
}

/** Resolves with the error code of a connection to the port, or 'connected' when something accepts it. */
function connectOutcome(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}

/**
 * Not on a terminal, `npm start` says where the gateway is in one JSON line (the log stays JSON), and
 * every address in it answers: the API, the viewer, the admin panel, the docs, the dashboard, the REPL's socket.
 */
async function assertAnnounced(port: number, stdout: () => string): Promise<void> {
  const ready = await eventually(() => {
    const line = stdout()
      .split('\n')
      .find((text) => text.includes('"gateway ready"'));
    return line ? (JSON.parse(line) as Record<string, string>) : undefined;
  }, START_MS_MAX);
  const base = `http://127.0.0.1:${port}`;
  assert.equal(ready.api, `${base}/api/v1`);
  assert.equal(ready.viewer, `${base}/`);
  assert.equal(ready.admin, `${base}/admin`);
  assert.equal(ready.docs, `${base}/docs`);
  assert.equal((await fetch(`${ready.api}/me`)).status, 401);
  for (const page of [ready.viewer, ready.admin, ready.docs, ready.dashboard!]) {
    const answer = await fetch(page);
    assert.equal(answer.status, 200, page);
    assert.match(answer.headers.get('content-type') ?? '', /^text\/html/, page);
  }
  assert.ok(existsSync(ready.repl_socket!), 'the REPL socket is where the banner says');
  assert.equal(ready.repl, `npm run repl -- ${ready.repl_socket}`);
  // npm prints its own `> payment-gateway start` header; every line the gateway writes is JSON.
  const gatewayLines = stdout()
    .split('\n')
    .filter((text) => text !== '' && !text.startsWith('> '));
  for (const line of gatewayLines) assert.doesNotThrow(() => JSON.parse(line), line);
}

test('SIGTERM to the `npm start` process stops the gateway: nothing is left running or listening', async () => {
  const port = await freePort();
  const keyPrefix = `pgw-test-npm-start-${crypto.randomUUID()}:`;
  // A supervisor runs `npm start` and signals that one process, not its process group.
  const npm = spawn('npm', ['start'], {
    cwd: REPO_ROOT,
    env: {
      ...process.env,
      PORT: String(port),
      HOST: '127.0.0.1',
      DASHBOARD_PORT: '0',
      DATABASE_URL: await testDatabaseUrl(),
      REDIS_KEY_PREFIX: keyPrefix,
      REPL_SOCKET: join(tmpdir(), `pgw-test-${crypto.randomUUID()}.sock`),
      LOG_LEVEL: 'info',
      ADMIN_API_KEY: ADMIN_KEY,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  let stdout = '';
  npm.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString();
    stdout += chunk.toString();
  });
  npm.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = once(npm, 'exit');
  let gatewayPid: number | undefined;
  try {
    // The gateway's own process names itself in its log lines (pid).
    gatewayPid = await eventually(() => {
      if (npm.exitCode !== null) throw new Error(`npm start ended before the gateway listened:\n${output}`);
      const line = output.split('\n').find((text) => text.includes('"gateway listening"'));
      return line ? (JSON.parse(line) as { pid: number }).pid : undefined;
    }, START_MS_MAX);
    assert.notEqual(gatewayPid, npm.pid, 'npm runs the gateway in a process of its own');
    assert.equal(await connectOutcome(port), 'connected');
    await assertAnnounced(port, () => stdout);

    npm.kill('SIGTERM');
    const stopped = await Promise.race([
      exited.then(() => true),
      new Promise<false>((resolve) => setTimeout(resolve, scaled(STOP_MS_MAX), false).unref()),
    ]);
    assert.ok(stopped, `npm did not exit within ${scaled(STOP_MS_MAX)} ms of SIGTERM:\n${output}`);
    assert.equal(await connectOutcome(port), 'ECONNREFUSED', 'something still listens on the port');
    assert.equal(running(gatewayPid), false, `the gateway (pid ${gatewayPid}) outlived npm`);
    assert.match(output, /"shutting down"/);
  } finally {
    // Whatever the outcome, nothing of this run is left behind.
    if (gatewayPid !== undefined && running(gatewayPid)) {
      process.kill(gatewayPid, 'SIGKILL');
      // Gone before its keys are deleted: a write it had under way must not land after them.
      await eventually(() => (running(gatewayPid!) ? undefined : true), STOP_MS_MAX);
    }
    if (npm.exitCode === null && npm.signalCode === null) {
      npm.kill('SIGKILL');
      await exited;
    }
    await deleteKeys(keyPrefix);
  }
});
