import type { Config } from '../config.ts';
import type { BankClient } from '../engine/bank-client.ts';
import type { Payments } from '../engine/payments.ts';
import type { Registry } from '../engine/registry.ts';
import type { ShardLeases } from '../engine/shard-leases.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import type { DeadLetterStore } from '../persistence/dead-letters.ts';
import type { IdempotencyStore } from '../persistence/idempotency.ts';
import type { Journal } from '../persistence/journal.ts';
import type { ReconciliationReader } from '../persistence/reconciliation-reader.ts';
import type { Activity } from '../http/dashboard/activity.ts';
import { startDashboard } from '../http/dashboard/server.ts';
import { createReplCommands } from './repl-commands.ts';
import { startReplServer } from './repl-server.ts';

/** The running gateway's parts the operator tools look at. */
export interface OperatorToolsDeps {
  config: Pick<
    Config,
    'DASHBOARD_HOST' | 'DASHBOARD_PORT' | 'DASHBOARD_ALLOWED_HOSTS' | 'REPL_SOCKET' | 'ADMIN_API_KEY' | 'INSTANCE_ID'
  >;
  /** The public API's address, where the dashboard forwards a dead letter's retry. */
  gateway_url: string;
  forward_timeout_ms: number;
  reconciliation: ReconciliationReader;
  idempotency: Pick<IdempotencyStore, 'recentForUser'>;
  metrics: Metrics;
  activity: Activity;
  accounts: Registry;
  payments: Payments;
  bank: BankClient;
  journal: Journal;
  deadLetters: DeadLetterStore;
  /** Who owns which shard across the instances, and the shard table the REPL and the dashboard show. */
  ownership: ShardLeases;
  log: Logger;
}

/**
 * Starts what an operator uses on a running instance: the metrics' gauges, the task dashboard on
 * DASHBOARD_PORT, and the admin REPL on the REPL_SOCKET. `close` stops the last two.
 */
export async function startOperatorTools(
  deps: OperatorToolsDeps,
): Promise<{ dashboardUrl: string; replSocket: string; close(): Promise<void> }> {
  const { config, accounts, payments, bank, ownership } = deps;
  const shardTable = () => ownership.table();
  deps.metrics.watch({
    actorsAlive: () => accounts.alive(),
    mailboxDepth: () => accounts.mailboxDepth(),
    shardsOwned: () => ownership.owned().length,
    circuitState: () => bank.state(),
    paymentsInFlight: () => payments.inFlightCount(),
    journalQueueDepth: () => deps.journal.depth(),
  });
  const dashboard = await startDashboard({
    host: config.DASHBOARD_HOST,
    port: config.DASHBOARD_PORT,
    allowed_hosts: config.DASHBOARD_ALLOWED_HOSTS,
    admin_key: config.ADMIN_API_KEY,
    metrics: deps.metrics.registry,
    gateway_url: deps.gateway_url,
    forward_timeout_ms: deps.forward_timeout_ms,
    instance: config.INSTANCE_ID,
    accounts,
    payments,
    bank,
    deadLetters: deps.deadLetters,
    shardTable,
    ownership,
    activity: deps.activity,
    log: deps.log.child({ module: 'dashboard' }),
  });
  const repl = await startReplServer({
    socket_path: config.REPL_SOCKET,
    admin_key: config.ADMIN_API_KEY,
    instance: config.INSTANCE_ID,
    commands: createReplCommands({
      ...deps,
      instance: config.INSTANCE_ID,
      shardTable,
    }),
    log: deps.log.child({ module: 'repl' }),
  }).catch(async (error: unknown) => {
    await dashboard.close();
    throw error;
  });
  return {
    dashboardUrl: dashboard.url,
    replSocket: repl.path,
    close: async () => {
      await Promise.all([dashboard.close(), repl.close()]);
    },
  };
}
