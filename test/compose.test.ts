// The container delivery (Dockerfile, .dockerignore, docker-compose.yml, deploy/nginx.conf, Makefile),
// checked without Docker: no image can be built or pulled here, so these tests check what can go wrong
// without one. docker-compose (v1) validates the file when it is installed; the rest always runs.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join, posix } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const read = (path: string) => readFileSync(join(root, path), 'utf8');
const exists = (path: string) => existsSync(join(root, path));

// ---- a reader for the YAML subset docker-compose.yml is written in ----------------------------------
// Block mappings and sequences, plain and quoted scalars, flow sequences of scalars. Anchors, aliases,
// merge keys and multi-line scalars are refused rather than misread (the compose file uses none).

type Yaml = string | null | Yaml[] | { [key: string]: Yaml };
interface Line {
  indent: number;
  text: string;
  number: number;
}

function stripComment(text: string): string {
  let quote = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote) {
      if (c === '\\' && quote === '"') i++;
      else if (c === quote) quote = '';
    } else if (c === '"' || c === "'") quote = c;
    else if (c === '#' && (i === 0 || /\s/.test(text[i - 1] ?? ''))) return text.slice(0, i).trimEnd();
  }
  return text.trimEnd();
}

function splitFlow(body: string): string[] {
  const items: string[] = [];
  let quote = '';
  let start = 0;
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (quote) {
      if (c === '\\' && quote === '"') i++;
      else if (c === quote) quote = '';
    } else if (c === '"' || c === "'") quote = c;
    else if (c === ',') {
      items.push(body.slice(start, i));
      start = i + 1;
    }
  }
  if (body.slice(start).trim()) items.push(body.slice(start));
  return items.map((item) => item.trim());
}

function scalar(raw: string, line: Line): Yaml {
  const text = raw.trim();
  if (/^[&*!|>{]/.test(text)) throw new Error(`line ${line.number}: unsupported YAML here: ${text}`);
  if (text.startsWith('[')) {
    if (!text.endsWith(']')) throw new Error(`line ${line.number}: multi-line flow sequence`);
    return splitFlow(text.slice(1, -1)).map((item) => scalar(item, line));
  }
  if (text.startsWith('"')) return JSON.parse(text) as string;
  if (text.startsWith("'")) return text.slice(1, -1).replaceAll("''", "'");
  return text === '' || text === '~' || text === 'null' ? null : text;
}

function parseBlock(lines: Line[], at: number, indent: number): [Yaml, number] {
  const first = lines[at];
  if (!first || first.indent < indent) return [null, at];
  if (first.text === '-' || first.text.startsWith('- ')) {
    const items: Yaml[] = [];
    let i = at;
    while (i < lines.length && lines[i]!.indent === first.indent && /^-( |$)/.test(lines[i]!.text)) {
      const line = lines[i]!;
      const rest = line.text.slice(1).trim();
      if (/^[^'"[]+?:( |$)/.test(rest)) throw new Error(`line ${line.number}: mappings in sequences are unsupported`);
      if (rest) {
        items.push(scalar(rest, line));
        i++;
      } else {
        const [value, next] = parseBlock(lines, i + 1, first.indent + 1);
        items.push(value);
        i = next;
      }
    }
    return [items, i];
  }
  const mapping: Record<string, Yaml> = {};
  let i = at;
  while (i < lines.length && lines[i]!.indent === first.indent) {
    const line = lines[i]!;
    const match = /^([^'"\s][^:]*?):(?: +(.*))?$/.exec(line.text);
    if (!match) throw new Error(`line ${line.number}: expected "key: value", got ${line.text}`);
    const key = match[1]!;
    if (key === '<<') throw new Error(`line ${line.number}: merge keys are unsupported`);
    if (key in mapping) throw new Error(`line ${line.number}: duplicate key ${key}`);
    if (match[2] !== undefined) {
      mapping[key] = scalar(match[2], line);
      i++;
      continue;
    }
    const next = lines[i + 1];
    const nested = next && (next.indent > line.indent || (next.indent === line.indent && /^-( |$)/.test(next.text)));
    if (nested) [mapping[key], i] = parseBlock(lines, i + 1, next.indent);
    else [mapping[key], i] = [null, i + 1];
  }
  if (i < lines.length && lines[i]!.indent > first.indent) throw new Error(`line ${lines[i]!.number}: bad indentation`);
  return [mapping, i];
}

function parseYaml(source: string): Yaml {
  const lines: Line[] = [];
  source.split('\n').forEach((raw, index) => {
    if (raw.includes('\t')) throw new Error(`line ${index + 1}: tab in YAML`);
    const text = stripComment(raw);
    if (text.trim())
      lines.push({ indent: text.length - text.trimStart().length, text: text.trim(), number: index + 1 });
  });
  const [value, end] = parseBlock(lines, 0, 0);
  if (end !== lines.length) throw new Error(`line ${lines[end]?.number}: not parsed`);
  return value;
}

function asMap(value: Yaml | undefined, what: string): Record<string, Yaml> {
  assert.ok(value && typeof value === 'object' && !Array.isArray(value), `${what} is a mapping`);
  return value;
}
function asList(value: Yaml | undefined, what: string): Yaml[] {
  assert.ok(Array.isArray(value), `${what} is a sequence`);
  return value;
}
function asText(value: Yaml | undefined, what: string, fallback?: string): string {
  const text = value ?? fallback;
  assert.ok(typeof text === 'string', `${what} is a string`);
  return text;
}

// ---- the files under test ----------------------------------------------------------------------------

const compose = asMap(parseYaml(read('docker-compose.yml')), 'docker-compose.yml');
const services = asMap(compose.services, 'services');
const service = (name: string) => asMap(services[name], `service ${name}`);
const environment = (name: string) => asMap(service(name).environment ?? {}, `${name}.environment`);
const builtHere = Object.keys(services).filter((name) => service(name).build !== undefined);
/** Services that run the image's default command, the gateway itself. */
const gateways = builtHere.filter((name) => service(name).command === undefined);

const dockerfile = read('Dockerfile').replace(/\\\n/g, ' ');
const instructions = dockerfile
  .split('\n')
  .map((line) => line.trim())
  .filter((line) => line && !line.startsWith('#'));
const instruction = (name: string) => instructions.filter((line) => line.toUpperCase().startsWith(`${name} `));
const imageCmd = JSON.parse(instruction('CMD').at(-1)?.slice(4) ?? '[]') as string[];

/** The variables config.ts parses: the only ones the gateway reads. */
const configVariables = new Set([...read('config.ts').matchAll(/^ {2}([A-Z][A-Z0-9_]*):/gm)].map((m) => m[1]!));

// .dockerignore with Docker's rules: the last pattern matching a path or one of its parents decides.
const ignoreRules = read('.dockerignore')
  .split('\n')
  .map((line) => line.trim())
  .filter((line) => line && !line.startsWith('#'))
  .map((line) => {
    const negated = line.startsWith('!');
    const pattern = posix.normalize(line.slice(negated ? 1 : 0).replace(/^\/+/, '')).replace(/\/+$/, '');
    const source = pattern
      .split(/(\*\*\/|\*\*|\*|\?)/)
      .map((part) =>
        part === '**/'
          ? '(?:.*/)?'
          : part === '**'
            ? '.*'
            : part === '*'
              ? '[^/]*'
              : part === '?'
                ? '[^/]'
                : part.replace(/[.+^${}()|[\]\\]/g, '\\$&'),
      )
      .join('');
    return { negated, regex: new RegExp(`^${source}$`) };
  });
function inImage(path: string): boolean {
  const parts = path.split('/');
  const candidates = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
  let included = true;
  for (const rule of ignoreRules) if (candidates.some((c) => rule.regex.test(c))) included = rule.negated;
  return included;
}

/** Every repository file `entry` reaches through relative imports, and the packages it imports. */
function importGraph(entries: string[]): { files: Set<string>; packages: Set<string>; missing: string[] } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const missing: string[] = [];
  const queue = [...entries];
  for (let file = queue.shift(); file !== undefined; file = queue.shift()) {
    if (files.has(file)) continue;
    if (!exists(file)) {
      missing.push(file);
      continue;
    }
    files.add(file);
    const code = read(file);
    // One statement at a time, so that `import type` (erased at run time) is told apart.
    const statements = code.split(/^(?=[ \t]*(?:import|export)\b)/m);
    const specifiers = [
      ...statements.map((s) => /^\s*(?:import|export)(?!\s+type\s)[^'";]*?from\s+['"]([^'"]+)['"]/.exec(s)),
      ...statements.map((s) => /^\s*import\s+['"]([^'"]+)['"]/.exec(s)),
      ...code.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g),
    ].flatMap((m) => (m ? [m[1]!] : []));
    for (const specifier of specifiers) {
      if (specifier.startsWith('.')) queue.push(posix.normalize(posix.join(posix.dirname(file), specifier)));
      else if (!specifier.startsWith('node:')) {
        const parts = specifier.split('/');
        packages.add(specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!);
      }
    }
  }
  return { files, packages, missing };
}

function hostPort(url: Yaml | undefined, what: string): { host: string; port: string; url: URL } {
  assert.equal(typeof url, 'string', `${what} is set`);
  const parsed = new URL(url as string);
  return { host: parsed.hostname, port: parsed.port, url: parsed };
}

/** `[host_ip:]published:target` mappings of a service. */
function ports(name: string): { published: string; target: string }[] {
  return asList(service(name).ports ?? [], `${name}.ports`).map((entry) => {
    const parts = asText(entry, `${name}.ports[]`).split(':');
    return { published: parts.at(-2) ?? '', target: parts.at(-1)!.replace(/\/tcp$/, '') };
  });
}

// ---- the tests ---------------------------------------------------------------------------------------

const hasDockerCompose = spawnSync('docker-compose', ['version'], { stdio: 'ignore' }).status === 0;
const hasComposeV2 = spawnSync('docker', ['compose', 'version'], { stdio: 'ignore' }).status === 0;

test('docker-compose (v1) validates docker-compose.yml', (t) => {
  if (!hasDockerCompose) return t.skip('docker-compose not installed');
  const check = spawnSync('docker-compose', ['-f', 'docker-compose.yml', 'config', '-q'], {
    cwd: root,
    encoding: 'utf8',
  });
  assert.equal(check.status, 0, check.stderr);
  const listed = spawnSync('docker-compose', ['-f', 'docker-compose.yml', 'config', '--services'], {
    cwd: root,
    encoding: 'utf8',
  });
  assert.deepEqual(
    listed.stdout.split('\n').filter(Boolean).sort(),
    Object.keys(services).sort(),
    'services read alike',
  );
});

test('docker compose (v2) validates docker-compose.yml', (t) => {
  if (!hasComposeV2) return t.skip('docker compose v2 not installed');
  const check = spawnSync('docker', ['compose', '-f', 'docker-compose.yml', 'config', '-q'], {
    cwd: root,
    encoding: 'utf8',
  });
  assert.equal(check.status, 0, check.stderr);
});

test('the files the compose file and the Dockerfile name exist', () => {
  for (const name of builtHere) {
    const build = service(name).build;
    const context = typeof build === 'string' ? build : asText(asMap(build, `${name}.build`).context, 'context', '.');
    assert.ok(exists(join(context, 'Dockerfile')), `${name}: ${context}/Dockerfile`);
    for (const arg of asList(service(name).command ?? imageCmd, `${name}.command`)) {
      if (typeof arg === 'string' && /\.[cm]?[jt]s$/.test(arg)) {
        assert.ok(exists(arg), `${name} runs ${arg}, which does not exist yet`);
        assert.ok(inImage(arg), `${name} runs ${arg}, which .dockerignore leaves out of the image`);
      }
    }
  }
  for (const name of Object.keys(services)) {
    for (const volume of asList(service(name).volumes ?? [], `${name}.volumes`)) {
      const source = asText(volume, `${name}.volumes[]`).split(':')[0]!;
      if (source.startsWith('.')) assert.ok(exists(source), `${name} mounts ${source}`);
    }
  }
  for (const copy of instruction('COPY').filter((line) => !line.includes('--from='))) {
    const sources = copy.split(/\s+/).slice(1, -1);
    for (const source of sources.filter((s) => !s.startsWith('--') && s !== '.')) assert.ok(exists(source), source);
  }
});

test('the image holds every file and package its commands import, and no test', () => {
  const scripts = (JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts;
  const entries = new Set<string>();
  for (const name of builtHere) {
    for (const arg of asList(service(name).command ?? imageCmd, `${name}.command`)) {
      if (typeof arg === 'string' && arg.endsWith('.ts')) entries.add(arg);
    }
  }
  // The scripts `make ... COMPOSE=1` runs inside a container.
  for (const script of ['start', 'migrate', 'seed', 'reconcile', 'repl', 'bank']) {
    const file = /^tsx (\S+\.ts)$/.exec(scripts[script] ?? '')?.[1];
    if (file) entries.add(file);
  }
  const graph = importGraph([...entries]);
  assert.deepEqual(graph.missing, [], 'run in a container or imported, but missing');
  for (const file of graph.files) {
    assert.ok(inImage(file), `${file} is imported but .dockerignore leaves it out`);
    assert.ok(!file.endsWith('.test.ts'), `${file}: runtime code imports a test`);
  }
  const dependencies = (JSON.parse(read('package.json')) as { dependencies: Record<string, string> }).dependencies;
  for (const name of graph.packages) {
    assert.ok(name in dependencies, `${name} is imported at run time but is not in "dependencies" (npm ci --omit=dev)`);
  }
  assert.ok('tsx' in dependencies, 'tsx runs the image: a production dependency');
  const migrations = readdirSync(join(root, 'persistence/migrations'));
  assert.ok(migrations.length > 0 && migrations.every((file) => inImage(`persistence/migrations/${file}`)));
  for (const left of ['test/edge.test.ts', 'config.test.ts', 'node_modules/tsx/package.json', '.git/HEAD']) {
    assert.ok(!inImage(left), `${left} stays out of the image`);
  }
});

test('the Dockerfile: slim Node 20, production, non-root, health-checked, node as the process', () => {
  const engines = (JSON.parse(read('package.json')) as { engines: { node: string } }).engines.node;
  const major = /NODE_MAJOR=(\d+)/.exec(dockerfile)?.[1];
  assert.ok(major && engines.startsWith(`>=${major}.`), `base image major ${major} vs engines ${engines}`);
  const stages: string[] = [];
  for (const from of instruction('FROM')) {
    const [, image, stage] = /^FROM\s+(\S+)(?:\s+AS\s+(\S+))?$/i.exec(from) ?? [];
    assert.ok(image === 'node:${NODE_MAJOR}-bookworm-slim' || stages.includes(image!), from);
    if (stage) stages.push(stage);
  }
  assert.match(dockerfile, /npm ci --omit=dev/);
  assert.match(dockerfile, /NODE_ENV=production/);
  assert.deepEqual(instruction('USER'), ['USER node']);
  const exposed = instruction('EXPOSE').flatMap((line) => line.split(/\s+/).slice(1));
  assert.deepEqual(exposed.sort(), ['3000', '5555']);
  assert.match(instruction('HEALTHCHECK')[0] ?? '', /fetch\(.*\/health/);
  assert.deepEqual(imageCmd, ['node', '--import', 'tsx', 'main.ts']);
  assert.ok(statSync(join(root, 'main.ts')).isFile());
});

test('the dependency patches are applied in the image before anything runs, and crashed processes restart', () => {
  // patch-package runs as our postinstall: the image's npm ci needs patches/ beside package.json.
  const copies = instruction('COPY').map((line) => line.split(/\s+/).slice(1).join(' '));
  const npmCi = dockerfile.indexOf('npm ci --omit=dev');
  assert.ok(
    copies.some((copy) => copy.startsWith('patches ')),
    'the Dockerfile copies patches/',
  );
  assert.ok(dockerfile.indexOf('COPY patches') < npmCi, 'patches/ is there when npm ci runs its postinstall');
  assert.ok(inImage('patches/postgres+3.4.9.patch'), '.dockerignore lets patches/ in');
  assert.match(read('package.json'), /"postinstall": "patch-package --error-on-fail"/);
  // A gateway that must die (a fault nothing can answer) is started again by the deployment.
  for (const name of [...gateways, 'bank', 'front-door', 'lb']) {
    const restart = asText(service(name).restart, `${name}.restart`);
    assert.ok(['always', 'unless-stopped', 'on-failure'].includes(restart), `${name} restarts: ${restart}`);
  }
});

test('gateway instances: distinct INSTANCE_IDs, each reachable at its INTERNAL_URL, otherwise the same settings', () => {
  assert.ok(gateways.length >= 2, `two gateway instances at least, found ${gateways.join(', ')}`);
  const ids = gateways.map((name) => asText(environment(name).INSTANCE_ID, `${name}.INSTANCE_ID`));
  assert.equal(new Set(ids).size, gateways.length, `distinct INSTANCE_IDs: ${ids.join(', ')}`);
  for (const name of gateways) {
    // The others forward requests there: the service's own name on the compose network, at its PORT.
    const env = environment(name);
    const internal = new URL(asText(env.INTERNAL_URL, `${name}.INTERNAL_URL`));
    assert.equal(internal.hostname, name, `${name}.INTERNAL_URL names the service`);
    assert.equal(internal.port || '80', asText(env.PORT, `${name}.PORT`, '3000'));
  }
  const [first, ...others] = gateways.map((name) => ({ ...environment(name), INSTANCE_ID: null, INTERNAL_URL: null }));
  for (const other of others) {
    assert.deepEqual(other, first, 'gateway instances differ only in INSTANCE_ID and INTERNAL_URL');
  }
  for (const name of [...gateways, 'migrate', 'seed']) {
    for (const variable of Object.keys(environment(name))) {
      assert.ok(configVariables.has(variable), `${name}: ${variable} is not a variable config.ts knows`);
    }
  }
  for (const name of gateways) {
    const env = environment(name);
    const target = asText(env.PORT, `${name}.PORT`, '3000');
    assert.ok(
      ports(name).some((port) => port.target === target),
      `${name} publishes its PORT ${target}`,
    );
    const deps = asMap(service(name).depends_on, `${name}.depends_on`);
    assert.equal(asMap(deps.migrate, 'migrate').condition, 'service_completed_successfully');
    assert.equal(asMap(deps.postgres, 'postgres').condition, 'service_healthy');
    assert.equal(asMap(deps.redis, 'redis').condition, 'service_healthy');
    assert.equal(hostPort(env.REDIS_URL, `${name}.REDIS_URL`).host, 'redis');
    const bank = hostPort(env.BANK_URL, `${name}.BANK_URL`);
    assert.equal(bank.host, 'bank');
    assert.equal(bank.port, asText(environment('bank').BANK_PORT, 'BANK_PORT'));
  }
});

test('every service reaches Postgres with the credentials and database Postgres is given', () => {
  const postgres = environment('postgres');
  for (const name of [...gateways, 'migrate', 'seed']) {
    const { host, port, url } = hostPort(environment(name).DATABASE_URL, `${name}.DATABASE_URL`);
    assert.deepEqual(
      [host, port || '5432', url.username, decodeURIComponent(url.password), url.pathname.slice(1)],
      ['postgres', '5432', postgres.POSTGRES_USER, postgres.POSTGRES_PASSWORD, postgres.POSTGRES_DB],
      `${name}.DATABASE_URL`,
    );
  }
});

test('the bank: variables cli/bank.ts reads, a signing secret the gateways accept, callbacks to a gateway', () => {
  const env = environment('bank');
  // cli/bank.ts and the simulator read these (not config.ts: the bank takes only its defaults).
  const { files, missing } = importGraph(['cli/bank.ts']);
  assert.deepEqual(missing, [], 'cli/bank.ts and its imports');
  const source = [...files]
    .filter((file) => file !== 'config.ts')
    .map(read)
    .join('\n');
  for (const variable of Object.keys(env)) assert.match(source, new RegExp(`\\b${variable}\\b`), `bank: ${variable}`);
  for (const name of gateways) assert.equal(env.WEBHOOK_SECRETS, environment(name).WEBHOOK_SECRETS);
  assert.ok(
    ports('bank').some((port) => port.target === asText(env.BANK_PORT, 'BANK_PORT')),
    'bank publishes BANK_PORT',
  );
  const callback = hostPort(env.BANK_CALLBACK_URL, 'BANK_CALLBACK_URL');
  assert.ok(gateways.includes(callback.host), `callbacks go to a gateway, not ${callback.host}`);
  assert.equal(callback.port, asText(environment(callback.host).PORT, 'PORT', '3000'));
  assert.equal(callback.url.pathname, '/webhooks/bank-callback');
});

/** The gateways `make up` starts (instances behind a profile are not started, so no balancer lists them). */
const started = () => gateways.filter((name) => service(name).profiles === undefined);

test('the front door: the public port 3000, falling back on every gateway, reading the shard table the gateways write', () => {
  const door = service('front-door');
  const env = environment('front-door');
  assert.deepEqual(door.command, ['node', '--import', 'tsx', 'cli/front-door.ts']);
  assert.ok(
    ports('front-door').some((port) => port.published === '3000' && port.target === asText(env.PORT, 'PORT')),
    'front door on host port 3000, at its PORT',
  );
  // Round robin over every gateway when a request's owner is unknown: each at its INTERNAL_URL.
  const upstreams = asText(env.FRONT_DOOR_UPSTREAMS, 'FRONT_DOOR_UPSTREAMS').split(',').sort();
  const internal = started()
    .map((name) => asText(environment(name).INTERNAL_URL, `${name}.INTERNAL_URL`))
    .sort();
  assert.deepEqual(upstreams, internal);
  // The same cluster as the gateways: one Redis, one key prefix, one shard count.
  for (const name of gateways) {
    for (const variable of ['REDIS_URL', 'REDIS_KEY_PREFIX', 'SHARDS']) {
      assert.equal(env[variable], environment(name)[variable], `front door and ${name}: ${variable}`);
    }
  }
  // Every variable it is given is one cli/front-door.ts reads.
  const source = read('cli/front-door.ts');
  for (const variable of Object.keys(env))
    assert.match(source, new RegExp(`\\b${variable}\\b`), `front door: ${variable}`);
  const deps = asMap(door.depends_on, 'front-door.depends_on');
  assert.equal(asMap(deps.redis, 'redis').condition, 'service_healthy');
  for (const name of started()) assert.ok(name in deps, `the front door starts after ${name}`);
  const health = asList(asMap(door.healthcheck, 'front-door.healthcheck').test, 'front-door.healthcheck.test');
  assert.match(asText(health.at(-1), 'front-door.healthcheck.test[-1]'), /127\.0\.0\.1:3000\/_front-door\/health/);
  assert.match(read('front-door.ts'), /'\/_front-door\/health'/, 'front-door.ts answers its health check');
  // Nothing else publishes the public port.
  for (const name of Object.keys(services).filter((other) => other !== 'front-door')) {
    assert.ok(!ports(name).some((port) => port.published === '3000'), `${name} publishes 3000`);
  }
});

test('the round-robin balancer (profile round-robin) sends to every gateway instance, on its port', () => {
  const lb = service('lb');
  assert.deepEqual(lb.profiles, ['round-robin'], 'nginx is the comparison, not started by make up');
  const mount = asList(lb.volumes, 'lb.volumes').map((volume) => asText(volume, 'lb.volumes[]'));
  assert.ok(mount.includes('./deploy/nginx.conf:/etc/nginx/nginx.conf:ro'), mount.join(', '));
  const nginx = read('deploy/nginx.conf').replace(/#.*$/gm, '');
  const upstreams = [...nginx.matchAll(/^\s*server\s+([\w.-]+:\d+)/gm)].map((m) => m[1]!).sort();
  const expected = started()
    .map((name) => `${name}:${asText(environment(name).PORT, 'PORT', '3000')}`)
    .sort();
  assert.deepEqual(upstreams, expected);
  const listen = /^\s*listen\s+(\d+);/m.exec(nginx)?.[1];
  assert.ok(
    ports('lb').some((port) => port.published === '3010' && port.target === listen),
    'lb on host port 3010',
  );
  assert.doesNotMatch(nginx, /non_idempotent/, 'nginx never resends a POST');
  assert.doesNotMatch(nginx, /proxy_set_header\s+(Authorization|Idempotency-Key|X-Request-ID)\b/i);
});

test('make test COMPOSE=1 uses the ports compose publishes Postgres and Redis on', () => {
  const makefile = read('Makefile');
  const pg = /127\.0\.0\.1:(\d+)\/gateway_test/.exec(makefile)?.[1];
  const redis = /redis:\/\/127\.0\.0\.1:(\d+)/.exec(makefile)?.[1];
  assert.ok(
    ports('postgres').some((port) => port.published === pg && port.target === '5432'),
    `postgres on ${pg}`,
  );
  assert.ok(
    ports('redis').some((port) => port.published === redis && port.target === '6379'),
    `redis on ${redis}`,
  );
});

test('make lists the targets the brief asks for', (t) => {
  if (spawnSync('make', ['--version'], { stdio: 'ignore' }).status !== 0) return t.skip('make not installed');
  const help = spawnSync('make', ['-s', '--no-print-directory'], { cwd: root, encoding: 'utf8' });
  assert.equal(help.status, 0, help.stderr);
  const targets = [...help.stdout.matchAll(/^ {2}make (\S+)/gm)].map((m) => m[1]);
  for (const target of ['up', 'down', 'build', 'migrate', 'test', 'lint', 'logs', 'shell', 'seed', 'bench', 'repl']) {
    assert.ok(targets.includes(target), `make ${target}`);
  }
});

test('the YAML reader refuses what it does not understand', () => {
  assert.throws(() => parseYaml('a: &x\n  b: 1\nc: *x\n'), /unsupported/);
  assert.throws(() => parseYaml('a:\n  <<: {}\n'), /unsupported/);
  assert.deepEqual(parseYaml("a:\n  - 'x # y'\n  - [\"p, q\", r]  # c\nb: 'it''s'\nc:\n"), {
    a: ['x # y', ['p, q', 'r']],
    b: "it's",
    c: null,
  });
});
