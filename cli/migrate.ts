import { loadConfig, loadEnvFile } from '../config.ts';
import { migrate } from '../persistence/migrator.ts';
import { createSql } from '../persistence/sql.ts';

loadEnvFile();
const config = loadConfig();
const sql = createSql(config.DATABASE_URL, { pool_max: 1, application_name: 'gateway-migrate' });
try {
  const applied = await migrate(sql);
  console.log(applied.length ? `applied: ${applied.join(', ')}` : 'schema is up to date');
} finally {
  await sql.end({ timeout: 5 });
}
