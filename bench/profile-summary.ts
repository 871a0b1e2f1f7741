import { readFileSync } from 'node:fs';

// Summarises a V8 CPU profile (`node --cpu-prof`, or BENCH_CPU_PROF_DIR=<dir> npm run bench -- <scenario>):
// self time by category (idle, GC, node internals, each package, each folder of ours) and the top
// functions by self time. Usage: npx tsx bench/profile-summary.ts <file.cpuprofile> [top=25] [from_s] [to_s]

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
}

const [file, topArg = '25', fromArg, toArg] = process.argv.slice(2);
if (!file) throw new Error('usage: npx tsx bench/profile-summary.ts <file.cpuprofile> [top] [from_s] [to_s]');
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const byId = new Map(profile.nodes.map((node) => [node.id, node]));

// Our files are the ones under the directory the profile is read from (run it from the repository).
const root = `file://${process.cwd()}/`;

function category(node: Node): string {
  const { functionName, url } = node.callFrame;
  if (functionName === '(idle)') return '(idle)';
  if (functionName === '(garbage collector)') return '(garbage collector)';
  if (functionName === '(program)') return '(program)';
  if (!url) return `(native) ${functionName || 'anonymous'}`;
  if (url.startsWith('node:internal/deps/')) return `node:internal/deps/${url.split('/')[2]}`;
  if (url.startsWith('node:internal/')) return `node:internal/${url.split('/')[1]!.replace(/\.js$/, '')}`;
  if (url.startsWith('node:')) return url;
  const modules = url.lastIndexOf('/node_modules/');
  if (modules >= 0) {
    const rest = url.slice(modules + 14).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  const ours = url.replace(root, '');
  return `ours: ${ours.includes('/') ? ours.split('/')[0] : ours}`;
}

// Time per sample: timeDeltas[i] is the time before sample i; weigh each sample by the next delta.
const from_us = fromArg === undefined ? -Infinity : Number(fromArg) * 1e6;
const to_us = toArg === undefined ? Infinity : Number(toArg) * 1e6;
const selfByNode = new Map<number, number>();
let clock = 0;
let total = 0;
for (let i = 0; i < profile.samples.length; i += 1) {
  clock += profile.timeDeltas[i] ?? 0;
  if (clock < from_us || clock > to_us) continue;
  const weight = profile.timeDeltas[i + 1] ?? 0;
  selfByNode.set(profile.samples[i]!, (selfByNode.get(profile.samples[i]!) ?? 0) + weight);
  total += weight;
}
const byCategory = new Map<string, number>();
const byFunction = new Map<string, number>();
for (const [id, us] of selfByNode) {
  const node = byId.get(id)!;
  const cat = category(node);
  byCategory.set(cat, (byCategory.get(cat) ?? 0) + us);
  const where = node.callFrame.url
    ? `${node.callFrame.url.replace(/^.*\/node_modules\//, '')}:${node.callFrame.lineNumber + 1}`
    : '';
  const name = `${node.callFrame.functionName || '(anonymous)'} ${where}`;
  byFunction.set(name, (byFunction.get(name) ?? 0) + us);
}
// Inclusive time of each of our functions (synchronous stacks only: an await ends a stack).
const inclusive = new Map<string, number>();
const parentOf = new Map<number, number>();
for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node.id);
for (const [id, us] of selfByNode) {
  const seen = new Set<string>();
  for (let at: number | undefined = id; at !== undefined; at = parentOf.get(at)) {
    const node = byId.get(at)!;
    const { url, functionName } = node.callFrame;
    if (!url.startsWith('file://') || url.includes('/node_modules/')) continue;
    const name = `${functionName || '(anonymous)'} ${url.replace(root, '')}`;
    if (seen.has(name)) continue;
    seen.add(name);
    inclusive.set(name, (inclusive.get(name) ?? 0) + us);
  }
}
const pct = (us: number) => `${((100 * us) / total).toFixed(1)} %`.padStart(7);
console.log(`${file}: ${(total / 1e6).toFixed(1)} s sampled`);
console.log('\nself time by category');
for (const [cat, us] of [...byCategory].sort((a, b) => b[1] - a[1]).slice(0, 30)) console.log(`${pct(us)}  ${cat}`);
console.log('\nself time by function');
for (const [name, us] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, Number(topArg))) {
  console.log(`${pct(us)}  ${name}`);
}
console.log('\ninclusive time of our functions (synchronous stacks)');
for (const [name, us] of [...inclusive].sort((a, b) => b[1] - a[1]).slice(0, Number(topArg))) {
  console.log(`${pct(us)}  ${name}`);
}
