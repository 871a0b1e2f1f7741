import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { fileURLToPath, pathToFileURL } from 'node:url';
import newman, { type NewmanRunSummary } from 'newman';
import postgres from 'postgres';
import { loadConfig } from '../config.ts';
import { migrate } from '../persistence/migrator.ts';
import { createSql } from '../persistence/sql.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const COLLECTION = fileURLToPath(new URL('../postman/payment-gateway.postman_collection.json', import.meta.url));
const ENVIRONMENT = fileURLToPath(new URL('../postman/local.postman_environment.json', import.meta.url));
const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/postgres';
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 15_000;
const OUTPUT_TAIL_CHARS = 20_000;

export interface PostmanRunResult {
  requests: number;
  assertions: number;
  /** One line per failed assertion, script error or request error. */
  failures: string[];
  /** The tail of the gateway's output when it was started here and something failed. */
  gateway_output?: string;
}

export interface PostmanRunOptions {
  /** newman reporters; `['cli']` prints the run. */
  reporters?: string[];
  /** Run against this already running gateway instead of starting one (its admin key and webhook secret
   * are taken from this process's environment, as `npm start` would read them). */
  base_url?: string;
}

/**
 * Runs the Postman collection with newman. Unless `base_url` is given, it starts a real gateway in a child
 * process (`node --import tsx main.ts`) on a free port, against a throwaway database it creates and
 * migrates, with the default rate limits and bank settings (only the bank's delays shortened), and stops
 * both afterwards.
 */
export async function runPostman(options: PostmanRunOptions = {}): Promise<PostmanRunResult> {
  if (options.base_url) {
    const config = loadConfig();
    return runCollection(options.base_url, config.ADMIN_API_KEY, config.WEBHOOK_SECRETS[0]!, options.reporters);
  }
  const database = await createThrowawayDatabase(process.env.DATABASE_URL ?? DEFAULT_DATABASE_URL);
  try {
    const env = gatewayEnv(database.url, await freePort());
    const config = loadConfig(env);
    const gateway = await spawnGateway(env);
    try {
      const result = await runCollection(
        gateway.url,
        config.ADMIN_API_KEY,
        config.WEBHOOK_SECRETS[0]!,
        options.reporters,
      );
      return result.failures.length > 0 ? { ...result, gateway_output: gateway.output() } : result;
    } catch (error) {
      throw new Error(`${String(error)}\n--- gateway output (tail) ---\n${gateway.output()}`, { cause: error });
    } finally {
      await stop(gateway.child);
    }
  } finally {
    await database.drop();
  }
}

/** The child's environment: the inherited one without rate-limit or bank overrides, so the defaults apply. */
function gatewayEnv(databaseUrl: string, port: number): NodeJS.ProcessEnv {
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith('RATE_LIMIT_') && !name.startsWith('BANK_')),
  );
  return {
    ...inherited,
    PORT: String(port),
    HOST: '127.0.0.1',
    DATABASE_URL: databaseUrl,
    // Counters of this run's own: nothing else counted in the same Redis affects the 429 check.
    REDIS_KEY_PREFIX: `pgw-newman-${randomUUID()}:`,
    INSTANCE_ID: `newman-${process.pid}`,
    DASHBOARD_PORT: '0',
    LOG_LEVEL: process.env.NEWMAN_GATEWAY_LOG_LEVEL ?? 'warn',
    BANK_MIN_DELAY_MS: '50',
    BANK_MAX_DELAY_MS: '200',
    // The collection's merchant webhook endpoint is on loopback (a closed port).
    MERCHANT_WEBHOOKS_ALLOW_PRIVATE: 'true',
  };
}

async function createThrowawayDatabase(serverUrl: string): Promise<{ url: string; drop: () => Promise<void> }> {
  const server = new URL(serverUrl);
  const name = `gateway_newman_${process.pid}_${Date.now()}`;
  const admin = postgres({
    host: server.hostname,
    port: Number(server.port || 5432),
    user: decodeURIComponent(server.username || 'postgres'),
    password: decodeURIComponent(server.password) || undefined,
    database: 'postgres',
    max: 1,
    onnotice: () => {},
  });
  const drop = async () => {
    try {
      await admin.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    } finally {
      await admin.end({ timeout: 5 });
    }
  };
  const url = new URL(server);
  url.pathname = `/${name}`;
  try {
    await admin.unsafe(`CREATE DATABASE "${name}"`);
    const sql = createSql(url.toString(), { pool_max: 1, application_name: 'gateway-newman-migrate' });
    try {
      await migrate(sql);
    } finally {
      await sql.end({ timeout: 5 });
    }
  } catch (error) {
    await drop();
    throw error;
  }
  return { url: url.toString(), drop };
}

async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Starts `node --import tsx main.ts` and waits until its /health answers 200. */
async function spawnGateway(
  env: NodeJS.ProcessEnv,
): Promise<{ child: ChildProcess; url: string; output: () => string }> {
  const url = `http://127.0.0.1:${env.PORT}`;
  const child = spawn(process.execPath, ['--import', 'tsx', 'main.ts'], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-OUTPUT_TAIL_CHARS);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the gateway exited with ${child.exitCode}:\n${output}`);
    if (Date.now() > deadline) {
      await stop(child);
      throw new Error(`the gateway did not become healthy within ${START_TIMEOUT_MS} ms:\n${output}`);
    }
    const healthy = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2000) }).then(
      (response) => response.status === 200,
      () => false,
    );
    if (healthy) return { child, url, output: () => output };
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** SIGTERM (a graceful shutdown), then SIGKILL if it takes too long. */
async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}

function runCollection(
  baseUrl: string,
  adminKey: string,
  webhookSecret: string,
  reporters: string[] = ['cli'],
): Promise<PostmanRunResult> {
  return new Promise((resolve, reject) => {
    newman.run(
      {
        collection: COLLECTION,
        environment: ENVIRONMENT,
        envVar: [
          { key: 'base_url', value: baseUrl },
          { key: 'admin_key', value: adminKey },
          { key: 'webhook_secret', value: webhookSecret },
        ],
        reporters,
        timeoutRequest: 30_000,
        timeoutScript: 60_000,
      },
      (error, summary: NewmanRunSummary) => {
        if (error) return reject(error);
        const { stats, failures } = summary.run;
        const lines = failures.map(
          (failure) =>
            `${failure.source?.name ?? failure.parent?.name ?? '?'}: ${failure.error.test ? `${failure.error.test}: ` : ''}${failure.error.message}`,
        );
        if (summary.run.error) lines.push(`run error: ${describe(summary.run.error)}`);
        resolve({ requests: stats.requests.total, assertions: stats.assertions.total, failures: lines });
      },
    );
  });
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : JSON.stringify(error);
}

// `npm run postman` (tsx cli/newman.ts [--base-url http://127.0.0.1:3000]): exit 1 on any failure.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const at = process.argv.indexOf('--base-url');
  const base_url = at > 0 ? process.argv[at + 1] : undefined;
  try {
    const result = await runPostman({ reporters: ['cli'], ...(base_url ? { base_url } : {}) });
    console.log(`${result.requests} requests, ${result.assertions} assertions, ${result.failures.length} failures`);
    for (const failure of result.failures) console.error(`  ✗ ${failure}`);
    if (result.gateway_output) console.error(`--- gateway output (tail) ---\n${result.gateway_output}`);
    process.exit(result.failures.length === 0 ? 0 : 1);
  } catch (error) {
    console.error(error);
    process.exit(1);
  }
}
