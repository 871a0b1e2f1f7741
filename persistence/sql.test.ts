import assert from 'node:assert/strict';
import { test } from 'node:test';
import { testDatabaseUrl } from '../test/support/database.ts';
import { scaled } from '../test/support/time.ts';
import postgres from 'postgres';
import { createSql } from './sql.ts';

// postgres.js 3.4.9 defers small writes with setImmediate; when the connection had closed by then, the
// deferred write threw outside any promise and ended the process (upstream #1154, #1208). patches/
// makes it fail the query with CONNECTION_CLOSED instead. A pinned connection (a transaction, a
// reserved connection) whose backend is ended is the case our fencing produces.
test('a query on a connection whose backend was ended fails as CONNECTION_CLOSED, and the pool recovers', async () => {
  const url = await testDatabaseUrl();
  // reserve() waits forever with fetch_types off (another postgres.js quirk): this pool keeps the default.
  const sql = postgres(url, { max: 2, onnotice: () => {} });
  const admin = createSql(url, { pool_max: 1, application_name: 'sql-test-admin' });
  try {
    const reserved = await sql.reserve();
    const [row] = await reserved<{ pid: number }[]>`SELECT pg_backend_pid() AS pid`;
    const pid = row!.pid;
    await admin`SELECT pg_terminate_backend(${pid})`;
    // Every query on the dead connection settles, as an error, within a bound: none waits forever, and
    // none throws outside its promise (which would end this process and fail the file).
    const settled_ms_max = scaled(5000);
    for (let i = 0; i < 4; i++) {
      const outcome = await Promise.race([
        reserved`SELECT 1`.then(
          () => 'answered',
          (error: { code?: string }) => error.code,
        ),
        new Promise((resolve) => setTimeout(resolve, settled_ms_max, 'unsettled')),
      ]);
      assert.ok(['ECONNRESET', 'CONNECTION_CLOSED'].includes(String(outcome)), `query ${i}: ${String(outcome)}`);
    }
    reserved.release();
    let answered = false;
    for (let attempt = 0; attempt < 5 && !answered; attempt++) {
      answered = await sql`SELECT 1 AS one`.then(
        ([row]) => row?.one === 1,
        () => false,
      );
    }
    assert.ok(answered, 'the pool answers again');
  } finally {
    await sql.end({ timeout: 1 });
    await admin.end({ timeout: 1 });
  }
});
