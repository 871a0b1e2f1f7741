// Each folder holds one kind of dependency (README, "Architecture"): Koa in http/, nact and opossum
// in engine/, Postgres and Redis in persistence/. This test reads the sources and fails when a file
// imports a package its folder must not, or writes SQL or Redis commands outside persistence/, so the
// layout stays what the README says. Tests are left out: integration tests open real Postgres and
// Redis connections wherever they sit, to set up and to check what the code did.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';

const ROOT = join(import.meta.dirname, '..');

/** The packages each folder must not import. */
const FORBIDDEN_PACKAGES: Record<string, readonly string[]> = {
  engine: ['koa', '@koa/router', 'ioredis', 'redlock', 'postgres'],
  http: ['postgres', 'ioredis', 'redlock', 'nact'],
  operator: ['postgres', 'ioredis', 'redlock'],
  persistence: ['koa', '@koa/router', 'nact', 'opossum'],
};

/** Folders that must hold no SQL and no Redis commands: those belong in persistence/. */
const NO_STORAGE_CODE = ['engine', 'http', 'operator'];

const STORAGE_CODE: readonly { what: string; pattern: RegExp }[] = [
  // postgres.js: a tagged template on a pool or transaction (sql`…`, tx`…`, sql<Row[]>`…`), or a transaction.
  { what: 'a postgres.js query', pattern: /\b(?:sql|tx)\s*(?:<[^`;]*?>)?\s*`/ },
  { what: 'a postgres.js transaction', pattern: /\bsql\.begin\s*\(/ },
  {
    what: 'SQL',
    pattern: /\b(?:SELECT\s[\s\S]{0,200}?\sFROM\s+\w+|INSERT\s+INTO\s+\w+|DELETE\s+FROM\s+\w+|UPDATE\s+\w+\s+SET)\b/,
  },
  { what: 'a Lua script for Redis', pattern: /\bredis\.p?call\s*\(/ },
  {
    what: 'a Redis command',
    pattern: /\bredis\.(?:get|set|publish|subscribe|multi|pipeline|eval|evalsha|defineCommand|ping)\s*\(/,
  },
];

/** The packages a source imports (static, type-only, re-exports and dynamic imports). */
function importedPackages(source: string): string[] {
  const specifiers = [
    ...source.matchAll(/^\s*(?:import|export)\s[^;]*?\sfrom\s*['"]([^'"]+)['"]/gm),
    ...source.matchAll(/^\s*import\s*['"]([^'"]+)['"]/gm),
    ...source.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g),
  ].map((match) => match[1]!);
  return specifiers
    .filter((specifier) => !specifier.startsWith('.') && !specifier.startsWith('node:'))
    .map((specifier) =>
      specifier
        .split('/')
        .slice(0, specifier.startsWith('@') ? 2 : 1)
        .join('/'),
    );
}

/** What a source file breaks of its folder's rules, one line each. */
function violations(path: string, source: string): string[] {
  const folder = path.split('/')[0]!;
  const found: string[] = [];
  for (const name of importedPackages(source)) {
    if (FORBIDDEN_PACKAGES[folder]?.includes(name)) found.push(`${path} imports ${name}`);
  }
  if (NO_STORAGE_CODE.includes(folder)) {
    // Comments may name SQL or Redis (saying where the code went); only code counts.
    const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
    for (const { what, pattern } of STORAGE_CODE) {
      if (pattern.test(code)) found.push(`${path} contains ${what} (its place is persistence/)`);
    }
  }
  return found;
}

function sources(folder: string): string[] {
  return readdirSync(join(ROOT, folder), { recursive: true, encoding: 'utf8' })
    .filter((name) => name.endsWith('.ts') && !name.endsWith('.test.ts'))
    .map((name) =>
      relative(ROOT, join(ROOT, folder, name))
        .split('\\')
        .join('/'),
    );
}

test('every folder imports only its own kind of dependency, and SQL and Redis stay in persistence/', () => {
  const files = Object.keys(FORBIDDEN_PACKAGES).flatMap(sources);
  assert.ok(files.length > 50, `found ${files.length} source files`);
  const found = files.flatMap((path) => violations(path, readFileSync(join(ROOT, path), 'utf8')));
  assert.deepEqual(found, []);
});

test('the check itself catches each kind of breach', () => {
  assert.deepEqual(violations('engine/x.ts', "import type { Redis } from 'ioredis';"), ['engine/x.ts imports ioredis']);
  assert.deepEqual(violations('engine/x.ts', "import Redlock, { type Lock } from 'redlock';"), [
    'engine/x.ts imports redlock',
  ]);
  assert.deepEqual(violations('http/x.ts', "const postgres = await import('postgres');"), [
    'http/x.ts imports postgres',
  ]);
  assert.deepEqual(violations('persistence/x.ts', "import Router from '@koa/router';"), [
    'persistence/x.ts imports @koa/router',
  ]);
  assert.deepEqual(violations('persistence/x.ts', "import nact from 'nact';"), ['persistence/x.ts imports nact']);
  assert.deepEqual(violations('http/x.ts', 'await deps.sql.begin(async (tx) => tx`SELECT 1`);'), [
    'http/x.ts contains a postgres.js query (its place is persistence/)',
    'http/x.ts contains a postgres.js transaction (its place is persistence/)',
  ]);
  assert.deepEqual(violations('engine/x.ts', 'const text = "SELECT user_id FROM journal";'), [
    'engine/x.ts contains SQL (its place is persistence/)',
  ]);
  assert.deepEqual(violations('http/x.ts', "const lua = `return redis.call('get', KEYS[1])`;"), [
    'http/x.ts contains a Lua script for Redis (its place is persistence/)',
  ]);
  assert.deepEqual(violations('engine/x.ts', 'await options.redis.publish(channel, message);'), [
    'engine/x.ts contains a Redis command (its place is persistence/)',
  ]);
  assert.deepEqual(violations('http/x.ts', '// The journal (SELECT … FROM journal) lives in persistence/.'), []);
  assert.deepEqual(violations('persistence/x.ts', "import postgres from 'postgres';\nsql`SELECT 1`;"), []);
});
