import { loadConfig } from '../config.ts';
import { hashApiKey } from '../http/auth.ts';
import { createSql } from '../persistence/sql.ts';

/** The demo users that CREDENTIALS.md lists; their keys are public and meant for local use only. */
export const DEMO_USERS = [
  {
    id: '0190d3a0-0000-7000-8000-00000000a11c',
    name: 'Alice Demo',
    email: 'alice@demo.test',
    api_key: 'pgw_demo_alice_0000000000000000000000000000',
  },
  {
    id: '0190d3a0-0000-7000-8000-000000000b0b',
    name: 'Bob Demo',
    email: 'bob@demo.test',
    api_key: 'pgw_demo_bob_00000000000000000000000000000000',
  },
  {
    id: '0190d3a0-0000-7000-8000-0000000ca201',
    name: 'Carol Demo',
    email: 'carol@demo.test',
    api_key: 'pgw_demo_carol_0000000000000000000000000000',
  },
] as const;

const config = loadConfig();
const sql = createSql(config.DATABASE_URL, { pool_max: 1, application_name: 'gateway-seed' });
try {
  for (const user of DEMO_USERS) {
    await sql`
      INSERT INTO users (id, name, email, api_key_hash)
      VALUES (${user.id}, ${user.name}, ${user.email}, ${hashApiKey(user.api_key)})
      ON CONFLICT (id) DO UPDATE SET api_key_hash = excluded.api_key_hash, revoked_at = NULL`;
    console.log(`${user.name.padEnd(11)} ${user.id}  ${user.api_key}`);
  }
} finally {
  await sql.end({ timeout: 5 });
}
