import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runPostman } from '../cli/newman.ts';
import { scaled } from './support/time.ts';

// The same run as `npm run postman`: the collection, with newman, against a gateway in a child process
// with the default rate limits and bank (fast delays), on a throwaway database.
test('the Postman collection passes against a fresh gateway', { timeout: scaled(90_000) }, async () => {
  const result = await runPostman({ reporters: [] });
  assert.deepEqual(
    result.failures,
    [],
    `${result.failures.length} Postman failures:\n${result.failures.join('\n')}\n${result.gateway_output ?? ''}`,
  );
  assert.ok(result.requests >= 49, `only ${result.requests} requests ran`);
  assert.ok(result.assertions >= 120, `only ${result.assertions} assertions ran`);
});
