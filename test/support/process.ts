import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADMIN_KEY } from './gateway.ts';
import { scaled } from './time.ts';

/** A gateway in a child process (so it can be killed), answering on `port`. */
export async function spawnGateway(
  env: Record<string, string>,
): Promise<{ child: ChildProcess; url: string; output: () => string }> {
  const port = env.PORT ?? String(await freePort());
  const child = spawn('node', ['--import', 'tsx', 'main.ts'], {
    env: {
      ...process.env,
      PORT: port,
      HOST: '127.0.0.1',
      ADMIN_API_KEY: ADMIN_KEY,
      LOG_LEVEL: 'info',
      RATE_LIMIT_GLOBAL_PER_MIN: '10000000',
      RATE_LIMIT_BALANCE_PER_MIN: '10000000',
      RATE_LIMIT_TRANSACTIONS_PER_MIN: '10000000',
      DASHBOARD_PORT: '0',
      REPL_SOCKET: join(tmpdir(), `pgw-test-${port}.sock`),
      // Gateways on one database form one cluster (shard leases), and a dead one's leases end soon. Under
      // this run's prefix, which the test command clears when the run ends.
      REDIS_KEY_PREFIX: `pgw-test-${process.env.TEST_RUN_ID ?? 'solo'}-${new URL(env.DATABASE_URL ?? process.env.DATABASE_URL ?? 'postgres://x/none').pathname.slice(1)}:`,
      SHARD_LEASE_MS: '1500',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const started = await Promise.race([
    (async () => {
      while (!output.includes('gateway listening')) await once(child.stdout, 'data');
      return true;
    })(),
    once(child, 'exit').then(() => false),
    new Promise<false>((resolve) => setTimeout(resolve, scaled(30_000), false).unref()),
  ]);
  if (!started) {
    // Never leave a half-started gateway behind: it would keep serving after the test.
    await kill9(child);
    throw new Error(`gateway did not start:\n${output}`);
  }
  return { child, url: `http://127.0.0.1:${port}`, output: () => output };
}

/** A port nothing listens on now: the kernel's choice for port 0, released at once for a child to take. */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** SIGKILLs a child and waits until it is gone. */
export async function kill9(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  await exited;
}
