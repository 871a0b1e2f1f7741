// CPU per event of the account's pure core (decide + apply) against the number of transactions already
// open: the cost must not grow with the account. Usage: npx tsx bench/apply-cost.ts [events] [most open]
import { apply, decide, emptyAccount, type AccountState, type Command } from '../engine/account.ts';

const OPEN_COUNTS = [10, 1_000, 5_000, 20_000].filter((n) => n <= Number(process.argv[3] ?? Infinity));
const EVENTS = Number(process.argv[2] ?? 4_000);

const create = (id: string): Command => ({
  type: 'create',
  transaction: { id, type: 'deposit', amount: 1n, currency: 'USD', description: null, metadata: null },
  at: '2026-01-01T00:00:00.000Z',
  request_id: null,
});
const settle = (id: string): Command => ({
  type: 'settle',
  transaction_id: id,
  outcome: 'succeeded',
  at: '2026-01-01T00:00:00.000Z',
  cause: 'bank_callback',
  request_id: null,
});

function run(state: AccountState, command: Command): AccountState {
  const decision = decide(state, command);
  if (decision.kind !== 'accepted') throw new Error(`${command.type} not accepted: ${decision.kind}`);
  return decision.events.reduce(apply, state);
}

console.log('| open transactions | CPU per event (decide + apply) |\n| ---: | ---: |');
for (const open of OPEN_COUNTS) {
  let state = emptyAccount('bench');
  for (let i = 0; i < open; i++) state = run(state, create(`open-${i}`));
  const started = process.cpuUsage();
  // Half creations, half settlements: the account stays at `open` transactions throughout.
  for (let i = 0; i < EVENTS / 2; i++) state = run(run(state, create(`new-${i}`)), settle(`new-${i}`));
  const used = process.cpuUsage(started);
  console.log(`| ${open.toLocaleString('en')} | ${((used.user + used.system) / EVENTS).toFixed(1)} µs |`);
}
