import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { Model, stepArbitrary } from '../test/support/account-model.ts';
import { apply, balanceOf, decide, emptyAccount, incomingOf, type AccountState, type Command } from './account.ts';
import { eventFromStored, stateFromStored, stateToStored, toStored } from './account-codec.ts';
import { plainState } from '../test/support/states.ts';

const USER = '0190d3a0-0000-7000-8000-000000000001';
const AT = '2026-01-01T00:00:00.000Z';

test('random command sequences agree with the reference model, and replaying the events gives the same state', () => {
  fc.assert(
    fc.property(fc.array(stepArbitrary, { maxLength: 60 }), (steps) => {
      const model = new Model();
      let state = emptyAccount(USER);
      const events = [];
      for (const [i, step] of steps.entries()) {
        const { command, accepted } = model.command(step, `00000000-0000-7000-8000-${String(i).padStart(12, '0')}`);
        const decision = decide(state, command);
        if (command.type !== 'start_processing') assert.equal(decision.kind === 'accepted', accepted);
        if (decision.kind === 'accepted') {
          for (const event of decision.events) {
            state = apply(state, event);
            events.push(toStored(event));
          }
        }
        model.check(state);
        assert.deepEqual(state.incoming, incomingOf(state.open));
      }
      const replayed = events.map(eventFromStored).reduce(apply, emptyAccount(USER));
      assert.deepEqual(plainState(replayed), plainState(state));
      assert.deepEqual(
        plainState(stateFromStored(JSON.parse(JSON.stringify(stateToStored(state))))),
        plainState(state),
      );
    }),
    { numRuns: 300 },
  );
});

test('a withdrawal over the available balance is rejected with insufficient_funds', () => {
  const decision = decide(emptyAccount(USER), {
    type: 'create',
    transaction: { id: 'w', type: 'withdrawal', amount: 1n, currency: 'USD', description: null, metadata: null },
    at: AT,
    request_id: null,
  });
  assert.deepEqual(decision, { kind: 'rejected', code: 'insufficient_funds' });
});

test('a deposit that would take the balance past 2^53 is rejected', () => {
  const state: AccountState = { ...emptyAccount(USER), balances: { USD: { available: 2n ** 53n - 10n, held: 0n } } };
  const decision = decide(state, {
    type: 'create',
    transaction: { id: 'd', type: 'deposit', amount: 11n, currency: 'USD', description: null, metadata: null },
    at: AT,
    request_id: null,
  });
  assert.equal(decision.kind === 'rejected' && decision.code, 'balance_limit_exceeded');
});

test('a result for a transaction that is not open is a no-op', () => {
  const decision = decide(emptyAccount(USER), {
    type: 'settle',
    transaction_id: 'nothing',
    outcome: 'succeeded',
    at: AT,
    cause: 'bank_callback',
    request_id: null,
  });
  assert.deepEqual(decision, { kind: 'noop', reason: 'not_open' });
});

test("a result that arrives before the submit's answer keeps the bank's reference; a later answer changes nothing", () => {
  const id = '00000000-0000-7000-8000-000000000077';
  let state = emptyAccount(USER);
  const run = (command: Command) => {
    const decision = decide(state, command);
    if (decision.kind === 'accepted') state = decision.events.reduce(apply, state);
    return decision;
  };
  const stamp = { at: AT, cause: 'bank_callback' as const, request_id: null };
  const deposit = { id, type: 'deposit' as const, amount: 500n, currency: 'USD', description: null, metadata: null };
  run({ type: 'create', transaction: deposit, at: AT, request_id: null });
  // The bank's callback wins the race with the worker's journaling of the submit's answer.
  const settled = run({ type: 'settle', transaction_id: id, outcome: 'succeeded', bank_reference: 'bnk_1', ...stamp });
  assert.equal(settled.kind, 'accepted');
  const event = settled.kind === 'accepted' ? settled.events[0]! : undefined;
  assert.equal(event?.type === 'transaction_succeeded' ? event.bank_reference : undefined, 'bnk_1');
  assert.deepEqual(eventFromStored(JSON.parse(JSON.stringify(toStored(event!)))), event, 'the reference is journaled');
  const late = run({ type: 'start_processing', transaction_id: id, bank_reference: 'bnk_1', attempts: 1, ...stamp });
  assert.deepEqual(late, { kind: 'noop', reason: 'not_open' });
  assert.deepEqual(balanceOf(state, 'USD'), { available: 500n, held: 0n });

  // With the reference already known (the usual order), the result does not repeat it.
  const other = '00000000-0000-7000-8000-000000000078';
  run({ type: 'create', transaction: { ...deposit, id: other }, at: AT, request_id: null });
  run({ type: 'start_processing', transaction_id: other, bank_reference: 'bnk_2', attempts: 1, ...stamp });
  const usual = run({ type: 'settle', transaction_id: other, outcome: 'failed', bank_reference: 'bnk_2', ...stamp });
  assert.deepEqual(usual.kind === 'accepted' && 'bank_reference' in usual.events[0]!, false);
});

test('a corrupt snapshot reads as nothing', () => {
  assert.equal(stateFromStored({ version: 1, user_id: USER, seq: 'x' }), undefined);
  assert.equal(stateFromStored(null), undefined);
  assert.throws(() => eventFromStored({ type: 'transaction_created', transaction: { amount: '1.5' } }));
});

const deposit = (id: string, amount: bigint): Command => ({
  type: 'create',
  transaction: { id, type: 'deposit', amount, currency: 'USD', description: null, metadata: null },
  at: AT,
  request_id: null,
});

/** Applies a command that must be accepted. */
function run(state: AccountState, command: Command): AccountState {
  const decision = decide(state, command);
  assert.equal(
    decision.kind,
    'accepted',
    JSON.stringify(decision, (_, v: unknown) => (typeof v === 'bigint' ? `${v}` : v)),
  );
  return decision.kind === 'accepted' ? decision.events.reduce(apply, state) : state;
}

test('the balance cap counts open deposits through the running incoming total', () => {
  const start: AccountState = { ...emptyAccount(USER), balances: { USD: { available: 2n ** 53n - 101n, held: 0n } } };
  let state = run(start, deposit('d1', 50n));
  state = run(state, deposit('d2', 30n));
  assert.deepEqual(state.incoming, { USD: 80n });
  const over = decide(state, deposit('d3', 21n));
  assert.equal(over.kind === 'rejected' && over.code, 'balance_limit_exceeded');
  state = run(state, deposit('d3', 20n));
  // A failed deposit no longer counts; a succeeded one moves from incoming to the balance.
  const settle = (transaction_id: string, outcome: 'succeeded' | 'failed'): Command => ({
    type: 'settle',
    transaction_id,
    outcome,
    at: AT,
    cause: 'bank_callback',
    request_id: null,
  });
  state = run(state, settle('d1', 'failed'));
  assert.deepEqual(state.incoming, { USD: 50n });
  state = run(state, settle('d2', 'succeeded'));
  state = run(state, settle('d3', 'succeeded'));
  assert.deepEqual(state.incoming, {});
  assert.equal(balanceOf(state, 'USD').available, 2n ** 53n - 51n);
  state = run(state, deposit('d4', 50n));
  assert.equal(decide(state, deposit('d5', 1n)).kind, 'rejected');
});

test('a version 1 snapshot (before incoming totals) still loads, with its incoming summed from open', () => {
  let state = run(emptyAccount(USER), deposit('d1', 700n));
  state = run(state, deposit('d2', 300n));
  state = run(state, {
    type: 'create',
    transaction: { id: 'e1', type: 'deposit', amount: 5n, currency: 'EUR', description: null, metadata: null },
    at: AT,
    request_id: null,
  });
  // Exactly what the previous version wrote: no `incoming`.
  const v1 = JSON.parse(
    JSON.stringify(
      toStored({
        version: 1,
        user_id: state.user_id,
        seq: state.seq,
        balances: state.balances,
        open: Object.fromEntries(state.open),
      }),
    ),
  ) as unknown;
  const loaded = stateFromStored(v1);
  assert.deepEqual(plainState(loaded), plainState(state));
  assert.deepEqual(loaded?.incoming, { USD: 1000n, EUR: 5n });
  // What a snapshot is written as now: version 2, with incoming.
  const v2 = JSON.parse(JSON.stringify(stateToStored(state))) as { version: number; incoming: unknown };
  assert.equal(v2.version, 2);
  assert.deepEqual(v2.incoming, { USD: '1000', EUR: '5' });
  assert.deepEqual(plainState(stateFromStored(v2)), plainState(state));
});

test('a snapshot whose incoming disagrees with its open transactions, or of an unknown version, reads as nothing', () => {
  const state = run(emptyAccount(USER), deposit('d1', 700n));
  const stored = JSON.parse(JSON.stringify(stateToStored(state))) as Record<string, unknown>;
  assert.equal(stateFromStored({ ...stored, incoming: { USD: '699' } }), undefined);
  assert.equal(stateFromStored({ ...stored, incoming: {} }), undefined);
  assert.equal(stateFromStored({ ...stored, incoming: undefined }), undefined);
  assert.equal(stateFromStored({ ...stored, version: 3 }), undefined);
});

test('toStored copies nested values with bigints as strings, keeping every key (even __proto__) in order', () => {
  const metadata = JSON.parse('{"b":"1","__proto__":"x","a":"2"}') as Record<string, string>;
  const stored = toStored({ amount: 5n, list: [1n, { n: 2n }], metadata, none: null, at: 'now' });
  assert.equal(
    JSON.stringify(stored),
    '{"amount":"5","list":["1",{"n":"2"}],"metadata":{"b":"1","__proto__":"x","a":"2"},"none":null,"at":"now"}',
  );
  assert.equal(Object.getPrototypeOf((stored as { metadata: object }).metadata), Object.prototype);
});

test("an admin's retry request is an event of its own: it moves no balance, no status and no incoming total", () => {
  const withdrawal: Command = {
    type: 'create',
    transaction: { id: 'w', type: 'withdrawal', amount: 300n, currency: 'USD', description: null, metadata: null },
    at: AT,
    request_id: null,
  };
  const funded: AccountState = { ...emptyAccount(USER), balances: { USD: { available: 1000n, held: 0n } } };
  const before = run(run(funded, deposit('d', 500n)), withdrawal);
  const later = '2026-01-02T00:00:00.000Z';
  const retry: Command = { type: 'request_retry', transaction_id: 'w', at: later, cause: 'admin', request_id: 'req-1' };
  const decision = decide(before, retry);
  assert.deepEqual(decision, {
    kind: 'accepted',
    events: [{ type: 'retry_requested', transaction_id: 'w', at: later, cause: 'admin', request_id: 'req-1' }],
  });
  const event = decision.kind === 'accepted' ? decision.events[0]! : assert.fail('not accepted');
  const after = apply(before, event);
  assert.equal(after.seq, before.seq + 1);
  assert.deepEqual(after.balances, before.balances);
  assert.deepEqual(after.incoming, before.incoming);
  assert.deepEqual(after.open.get('w'), { ...before.open.get('w')!, updated_at: later });
  // Stored and read back, as a journal row and inside a snapshot.
  assert.deepEqual(eventFromStored(JSON.parse(JSON.stringify(toStored(event)))), event);
  assert.deepEqual(plainState(stateFromStored(JSON.parse(JSON.stringify(stateToStored(after))))), plainState(after));
  assert.deepEqual(decide(emptyAccount(USER), retry), { kind: 'noop', reason: 'not_open' });
});

test('no event carries the cause recovery: recovery only applies events, so the journal refuses it', () => {
  const stamp = { at: AT, request_id: null, transaction_id: 'w' };
  assert.equal(eventFromStored({ type: 'retry_requested', ...stamp, cause: 'admin' }).type, 'retry_requested');
  assert.throws(() => eventFromStored({ type: 'retry_requested', ...stamp, cause: 'recovery' }));
  assert.throws(() =>
    eventFromStored({ type: 'attempt_failed', ...stamp, attempts: 1, error: 'x', cause: 'recovery' }),
  );
});
