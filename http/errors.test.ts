import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { REJECTION_CODES } from '../engine/rejections.ts';
import { bankErrors } from '../simulator/bank-errors.ts';
import { ACTOR_REFUSAL_CODES, ApiError, CATALOGUE, errorBody, errors, refusalError, rejectionError } from './errors.ts';

const ROOT = join(import.meta.dirname, '..');
const CATALOGUE_FILE = 'http/errors.ts';
const BANK_CATALOGUE_FILE = 'simulator/bank-errors.ts';
// The admin REPL answers over its own line protocol on a local socket (`{ ok, error }`), not HTTP.
const NOT_HTTP = new Set(['operator/repl-server.ts', 'operator/repl-commands.ts']);

/** Every TypeScript source of the service, tests and tools left out. */
function sources(dir = ROOT): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry);
    if (['node_modules', 'coverage', 'test', 'cli', 'bench'].includes(entry) || entry.startsWith('.')) return [];
    if (statSync(path).isDirectory()) return sources(path);
    return entry.endsWith('.ts') && !entry.endsWith('.test.ts') ? [relative(ROOT, path)] : [];
  });
}

/** The lines of the service's sources that match `pattern`, as `file:line: text`. */
function occurrences(pattern: RegExp, files: readonly string[]): string[] {
  return files.flatMap((file) =>
    readFileSync(join(ROOT, file), 'utf8')
      .split('\n')
      .flatMap((line, i) => (pattern.test(line) ? [`${file}:${i + 1}: ${line.trim()}`] : [])),
  );
}

/** An entry's error, every `{slot}` of its message and headers filled with `x`. */
function sample(entry: { message: string; headers: Readonly<Record<string, string>> }): ApiError {
  const slots = [entry.message, ...Object.values(entry.headers)].flatMap((t) =>
    [...t.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!),
  );
  return (entry as unknown as (params: Record<string, string>) => ApiError)(
    Object.fromEntries(slots.map((slot) => [slot, 'x'])),
  );
}

const camelCase = (code: string) => code.replace(/_(\w)/g, (_, letter: string) => letter.toUpperCase());
const catalogues = { gateway: errors, bank: bankErrors };

test('every entry has a snake_case code named after it, a status in 400–599 and a message', () => {
  for (const [name, catalogue] of Object.entries(catalogues)) {
    for (const [key, entry] of Object.entries(catalogue)) {
      assert.match(entry.code, /^[a-z]+(_[a-z]+)*$/, `${name}.${key}`);
      assert.equal(key, camelCase(entry.code), `${name}.${key} is not named after its code`);
      assert.ok(entry.status >= 400 && entry.status <= 599, `${name}.${key}: ${entry.status}`);
      assert.ok(entry.message.trim().length > 0, `${name}.${key} has no message`);
      const built = sample(entry);
      assert.ok(built instanceof ApiError);
      assert.deepEqual([built.status, built.code], [entry.status, entry.code]);
      assert.doesNotMatch(built.message, /[{}]|undefined/, `${name}.${key}: ${built.message}`);
      for (const value of Object.values(built.headers)) assert.doesNotMatch(value, /[{}]|undefined/);
    }
  }
});

test('no two entries share a code, in the gateway or between the gateway and the bank', () => {
  const all = [...Object.values(errors), ...Object.values(bankErrors)];
  const codes = all.map((entry) => entry.code);
  assert.deepEqual(
    codes.filter((code, i) => codes.indexOf(code) !== i),
    [],
  );
  assert.equal(CATALOGUE.size, Object.keys(errors).length);
});

test('parameters fill the message and the headers', () => {
  const allowed = errors.methodNotAllowed({ allowed: 'GET, POST' });
  assert.equal(allowed.message, 'Use one of: GET, POST.');
  assert.deepEqual(allowed.headers, { Allow: 'GET, POST' });
  assert.equal(errors.notFound({ what: 'user' }).message, 'The user does not exist.');
  assert.deepEqual(errors.rateLimitExceeded({ retry_after: 7 }).headers, { 'Retry-After': '7' });
});

test('the body carries the code, the message, the fields an occurrence adds, and the request id', () => {
  const details = [{ field: 'amount', message: 'too small' }];
  assert.deepEqual(errorBody(errors.validationError().with({ details }), 'r1'), {
    error: 'validation_error',
    message: 'The request is not valid.',
    details,
    request_id: 'r1',
  });
  assert.deepEqual(Object.keys(errorBody(errors.forbidden(), 'r2')), ['error', 'message', 'request_id']);
});

test("every rejection of the account and every actor's refusal maps to an entry", () => {
  for (const code of REJECTION_CODES) {
    const error = rejectionError({ kind: 'rejected', code });
    assert.equal(error.code, code);
    assert.ok(error.status >= 400 && error.status < 500, code);
  }
  for (const reason of ['busy', 'timeout', 'uncertain', 'not_owned', 'stale_epoch', 'failed'] as const) {
    const error = refusalError(reason);
    assert.equal(error.status, 503, reason);
    assert.equal(error.headers['Retry-After'], '1', reason);
  }
  assert.deepEqual(ACTOR_REFUSAL_CODES, [
    'account_busy',
    'outcome_unknown',
    'shard_unavailable',
    'storage_unavailable',
  ]);
});

test('no file builds an error outside the catalogues', () => {
  const files = sources();
  assert.ok(
    files.includes('gateway.ts') && files.includes('http/routes/transactions.ts'),
    'the sources were not found',
  );
  const others = files.filter((file) => file !== CATALOGUE_FILE);
  assert.deepEqual(occurrences(/new ApiError\(/, others), []);
  assert.deepEqual(
    occurrences(
      /\bdefineError\(/,
      others.filter((file) => file !== BANK_CATALOGUE_FILE),
    ),
    [],
  );
  // An error body by hand (`error: 'some_code'`), or a status written out, bypasses the catalogue.
  const answering = others.filter((file) => !file.startsWith('engine/') && !NOT_HTTP.has(file));
  assert.deepEqual(occurrences(/\berror: *['"`]/, answering), []);
  assert.deepEqual(occurrences(/\bctx\.status *= *[45]\d\d\b/, answering), []);
  // The engine and the storage return values: no HTTP status there (STYLE.md rule 13).
  const inner = files.filter((file) => file.startsWith('engine/') || file.startsWith('persistence/'));
  assert.deepEqual(occurrences(/\bstatus(Code)?: *[45]\d\d\b/, inner), []);
});
