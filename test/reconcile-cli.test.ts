import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { testDatabaseUrl } from './support/database.ts';
import { client, createUser, fund, startTestGateway } from './support/gateway.ts';

function reconcileCli(databaseUrl: string) {
  return spawnSync('node', ['--import', 'tsx', 'cli/reconcile.ts'], {
    env: { ...process.env, DATABASE_URL: databaseUrl },
    encoding: 'utf8',
    timeout: 60_000,
  });
}

test('npm run reconcile exits 0 on clean books, and 1 naming the account when the read model drifts', async () => {
  const gateway = await startTestGateway();
  try {
    const request = client(gateway.url);
    const user = await createUser(request);
    await fund(gateway, request, user, 5000);
    const clean = reconcileCli(await testDatabaseUrl());
    assert.equal(clean.status, 0, clean.stdout + clean.stderr);
    assert.match(clean.stdout, /\b0 differences/);

    await gateway.sql`UPDATE transactions SET amount = 5001 WHERE user_id = ${user.id}`;
    const drifted = reconcileCli(await testDatabaseUrl());
    assert.equal(drifted.status, 1);
    assert.match(
      drifted.stdout,
      new RegExp(`DIFF user=${user.id} currency=USD read_model balance available: journal=5000 other=5001`),
    );
  } finally {
    await gateway.close();
  }
});
