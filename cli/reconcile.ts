import { loadConfig, loadEnvFile } from '../config.ts';
import { reconcile } from '../engine/reconciliation.ts';
import { createReconciliationReader } from '../persistence/reconciliation-reader.ts';
import { createSql } from '../persistence/sql.ts';

// Recomputes every balance from the journal and compares it with the read model; exits 1 on any difference.
loadEnvFile();
const config = loadConfig();
const sql = createSql(config.DATABASE_URL, { pool_max: 2, application_name: 'gateway-reconcile' });
try {
  const report = await reconcile(createReconciliationReader(sql));
  for (const d of report.discrepancies) {
    console.log(`DIFF user=${d.user_id} currency=${d.currency} ${d.check}: journal=${d.journal} other=${d.other}`);
  }
  console.log(`${report.users} accounts, ${report.events} events, ${report.discrepancies.length} differences`);
  process.exitCode = report.discrepancies.length > 0 ? 1 : 0;
} finally {
  await sql.end({ timeout: 5 });
}
