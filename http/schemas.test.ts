import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { AMOUNT_MAX } from '../engine/money.ts';
import * as schemas from './schemas.ts';

const source = (path: string) => readFileSync(new URL(path, import.meta.url), 'utf8');

test('the amount maximum is the one of engine/money.ts, on the wire and in the query filters', () => {
  assert.equal(schemas.amount.safeParse(Number(AMOUNT_MAX)).success, true);
  assert.equal(schemas.amount.safeParse(Number(AMOUNT_MAX) + 1).success, false);
  assert.equal(schemas.historyQuery.safeParse({ min_amount: `${AMOUNT_MAX}` }).success, true);
  assert.equal(schemas.historyQuery.safeParse({ max_amount: `${AMOUNT_MAX + 1n}` }).success, false);
  // No second declaration to drift from it.
  const text = source('./schemas.ts');
  assert.match(text, /import \{[^}]*\bAMOUNT_MAX\b[^}]*\} from '\.\.\/engine\/money\.ts'/);
  assert.doesNotMatch(text, /const AMOUNT_MAX\b|1_?000_?000_?000_?000\b/);
});

test('the default page size is one named constant beside the maximum, and every list route uses it', () => {
  assert.equal(schemas.PAGE_LIMIT_DEFAULT, 20);
  assert.ok(schemas.PAGE_LIMIT_DEFAULT >= 1 && schemas.PAGE_LIMIT_DEFAULT <= schemas.PAGE_LIMIT_MAX);
  for (const query of [
    schemas.historyQuery,
    schemas.typedListQuery,
    schemas.transactionListQuery,
    schemas.deadLetterListQuery,
    schemas.userListQuery,
  ]) {
    assert.equal(query.safeParse({ limit: `${schemas.PAGE_LIMIT_MAX}` }).success, true);
    assert.equal(query.safeParse({ limit: `${schemas.PAGE_LIMIT_MAX + 1}` }).success, false);
  }
  const routes = readdirSync(new URL('./routes/', import.meta.url)).filter((name) => name.endsWith('.ts'));
  const defaulted = routes.filter((name) => /limit \?\? /.test(source(`./routes/${name}`)));
  assert.deepEqual(defaulted.sort(), [
    'accounts.ts',
    'admin.ts',
    'transactions.ts',
    'users.ts',
    'webhook-endpoints.ts',
  ]);
  for (const name of defaulted) {
    assert.doesNotMatch(source(`./routes/${name}`), /limit \?\? \d/, `${name} has a bare page size`);
    assert.match(source(`./routes/${name}`), /limit \?\? PAGE_LIMIT_DEFAULT/, name);
  }
});
