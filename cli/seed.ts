import { v7 as uuidv7 } from 'uuid';
import { loadConfig, loadEnvFile } from '../config.ts';
import { hashApiKey, KEY_SHOWN_PREFIX_LENGTH } from '../http/auth.ts';
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

loadEnvFile();
const config = loadConfig();
const sql = createSql(config.DATABASE_URL, { pool_max: 1, application_name: 'gateway-seed' });
try {
  for (const user of DEMO_USERS) {
    // The demo key works again after a run that revoked it; keys added meanwhile stay as they are.
    await sql.begin(async (tx) => {
      await tx`
        INSERT INTO users (id, name, email) VALUES (${user.id}, ${user.name}, ${user.email})
        ON CONFLICT (id) DO UPDATE SET revoked_at = NULL`;
      await tx`
        INSERT INTO api_keys (id, user_id, key_hash, prefix, label)
        VALUES (${uuidv7()}, ${user.id}, ${hashApiKey(user.api_key)}, ${user.api_key.slice(0, KEY_SHOWN_PREFIX_LENGTH)}, 'demo')
        ON CONFLICT (key_hash) DO UPDATE SET revoked_at = NULL`;
    });
    console.log(`${user.name.padEnd(11)} ${user.id}  ${user.api_key}`);
  }
} finally {
  await sql.end({ timeout: 5 });
}
