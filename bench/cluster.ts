import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADMIN_KEY, freePort, gatewayEnv, log, sleep, startServer, type Child } from './lib.ts';

// A cluster of gateways for a benchmark: N processes of main.ts on one database and one Redis key
// prefix (which is what makes them one cluster), each with its own instance id, port and REPL socket,
// ready once the shard table shows every shard owned and every instance owning some.

/** How long the shards may take to settle on the instances (they rebalance as they see each other). */
const SETTLE_TIMEOUT_MS = 60_000;
/** The owners must read the same this long before the load starts. */
const STABLE_MS = 500;

export interface Instance {
  id: string;
  url: string;
  child: Child;
  /** Access log lines ("msg":"request") written so far, by path. */
  requestLines: Map<string, number>;
}

export interface Cluster {
  instances: Instance[];
  /** The cluster's REDIS_KEY_PREFIX (its registry and shard table), for a front door to read. */
  prefix: string;
  /** The owner of each shard, by shard number, as the shard table read when the cluster settled. */
  owners: string[];
  /** Reads the owners again (to check that they did not move during the load). */
  readOwners(): Promise<(string | null)[]>;
  stop(): Promise<void>;
}

interface ShardTable {
  shards: { shard: number; owner: string | null }[];
}

/** Counts the access log lines of one child by path (a forwarded request is logged by both instances). */
function lineCounter(counts: Map<string, number>) {
  return (line: string) => {
    if (!line.includes('"msg":"request"')) return;
    const path = /"path":"([^"]*)"/.exec(line)?.[1];
    if (path !== undefined) counts.set(path, (counts.get(path) ?? 0) + 1);
  };
}

async function shardOwners(url: string): Promise<(string | null)[]> {
  const response = await fetch(`${url}/api/v1/admin/shards`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
  if (response.status !== 200) throw new Error(`GET /api/v1/admin/shards: ${response.status} ${await response.text()}`);
  const table = (await response.json()) as ShardTable;
  return table.shards.map((row) => row.owner);
}

/** Polls the shard table until every shard has an owner among `ids`, each of `ids` owns one, for STABLE_MS. */
async function settled(url: string, ids: string[]): Promise<string[]> {
  const deadline = performance.now() + SETTLE_TIMEOUT_MS;
  let since: { at: number; key: string } | undefined;
  let last: (string | null)[] = [];
  for (;;) {
    last = await shardOwners(url);
    const complete =
      last.every((owner) => owner !== null && ids.includes(owner)) && ids.every((id) => last.includes(id));
    const key = last.join(',');
    if (!complete) since = undefined;
    else if (since?.key !== key) since = { at: performance.now(), key };
    else if (performance.now() - since.at >= STABLE_MS) return last as string[];
    if (performance.now() > deadline) {
      throw new Error(`the shards never settled on ${ids.join(', ')}: ${JSON.stringify(last)}`);
    }
    await sleep(100);
  }
}

/** Starts `count` gateways forming one cluster (`tag` names its Redis prefix) and waits until it has settled. */
export async function startCluster(count: number, tag: string): Promise<Cluster> {
  const ports: number[] = [];
  while (ports.length < count) {
    const port = await freePort();
    if (!ports.includes(port)) ports.push(port);
  }
  const prefix = `bench-${process.pid}-${tag}:`;
  const started = await Promise.allSettled(
    ports.map(async (port): Promise<Instance> => {
      const id = `bench-${process.pid}-${tag}-${port}`;
      const url = `http://127.0.0.1:${port}`;
      const requestLines = new Map<string, number>();
      const env = gatewayEnv(port, {
        INSTANCE_ID: id,
        REDIS_KEY_PREFIX: prefix,
        REPL_SOCKET: join(tmpdir(), `pgw-${id}.sock`),
        DASHBOARD_PORT: '0',
      });
      const child = await startServer('main.ts', env, `${url}/health`, { onLine: lineCounter(requestLines) });
      return { id, url, child, requestLines };
    }),
  );
  const instances = started.flatMap((outcome) => (outcome.status === 'fulfilled' ? [outcome.value] : []));
  const stop = async () => {
    await Promise.all(instances.map((instance) => instance.child.stop()));
  };
  try {
    const failed = started.find((outcome) => outcome.status === 'rejected');
    if (failed) throw failed.reason;
    const settling = performance.now();
    const owners = await settled(
      instances[0]!.url,
      instances.map((instance) => instance.id),
    );
    const share = instances.map((i) => `${i.id.slice(-5)} ${owners.filter((owner) => owner === i.id).length}`);
    log(
      `${tag}: ${owners.length} shards settled in ${Math.round(performance.now() - settling)} ms (${share.join(', ')})`,
    );
    return { instances, prefix, owners, readOwners: () => shardOwners(instances[0]!.url), stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
