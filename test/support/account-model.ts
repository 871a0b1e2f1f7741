import assert from 'node:assert/strict';
import fc from 'fast-check';
import { balanceOf, type AccountState, type Command } from '../../engine/account.ts';

// The reference model of an account, shared by the pure property test (engine/account.test.ts) and
// the one on the real journal (test/engine.test.ts). It lives here, not in a test file, so that
// importing it runs no tests.

const AT = '2026-01-01T00:00:00.000Z';

/** What a random client and bank do to an account, as generated commands refer to transactions by index. */
export type Step =
  | { kind: 'deposit' | 'withdraw'; amount: bigint; currency: 'USD' | 'EUR' }
  | { kind: 'process' | 'succeed' | 'fail'; pick: number };

export const stepArbitrary: fc.Arbitrary<Step> = fc.oneof(
  fc.record({
    kind: fc.constantFrom('deposit' as const, 'withdraw' as const),
    amount: fc.bigInt({ min: 1n, max: 5000n }),
    currency: fc.constantFrom('USD' as const, 'EUR' as const),
  }),
  fc.record({ kind: fc.constantFrom('process' as const, 'succeed' as const, 'fail' as const), pick: fc.nat(1000) }),
);

/** The reference model: plain numbers per currency and a list of transactions. */
export class Model {
  available = new Map<string, bigint>();
  held = new Map<string, bigint>();
  transactions: { id: string; type: 'deposit' | 'withdrawal'; amount: bigint; currency: string; open: boolean }[] = [];

  /** The command for a step, and what the model expects of it. */
  command(step: Step, id: string): { command: Command; accepted: boolean } {
    if (step.kind === 'deposit' || step.kind === 'withdraw') {
      const type = step.kind === 'deposit' ? 'deposit' : 'withdrawal';
      const accepted = type === 'deposit' || step.amount <= (this.available.get(step.currency) ?? 0n);
      if (accepted) {
        this.transactions.push({ id, type, amount: step.amount, currency: step.currency, open: true });
        if (type === 'withdrawal') {
          this.move(step.currency, -step.amount, step.amount);
        }
      }
      const transaction = {
        id,
        type,
        amount: step.amount,
        currency: step.currency,
        description: null,
        metadata: null,
      } as const;
      return { command: { type: 'create', transaction, at: AT, request_id: null }, accepted };
    }
    const pick = 'pick' in step ? step.pick : 0;
    const target = this.transactions[pick % Math.max(1, this.transactions.length)];
    const transaction_id = target?.id ?? id;
    const accepted = Boolean(target?.open) && step.kind !== 'process';
    if (target && accepted) {
      target.open = false;
      if (step.kind === 'succeed' && target.type === 'deposit') this.move(target.currency, target.amount, 0n);
      if (step.kind === 'succeed' && target.type === 'withdrawal') this.move(target.currency, 0n, -target.amount);
      if (step.kind === 'fail' && target.type === 'withdrawal')
        this.move(target.currency, target.amount, -target.amount);
    }
    const stamp = { at: AT, cause: 'bank_callback' as const, request_id: null };
    if (step.kind === 'process') {
      return {
        command: { type: 'start_processing', transaction_id, bank_reference: 'b', attempts: 1, ...stamp },
        accepted: false,
      };
    }
    return {
      command: { type: 'settle', transaction_id, outcome: step.kind === 'succeed' ? 'succeeded' : 'failed', ...stamp },
      accepted,
    };
  }

  private move(currency: string, available: bigint, held: bigint): void {
    this.available.set(currency, (this.available.get(currency) ?? 0n) + available);
    this.held.set(currency, (this.held.get(currency) ?? 0n) + held);
  }

  /** Asserts the account's balances equal the model's. */
  check(state: AccountState): void {
    for (const currency of ['USD', 'EUR']) {
      const balance = balanceOf(state, currency);
      assert.ok(balance.available >= 0n && balance.held >= 0n, 'a balance went negative');
      assert.equal(balance.available, this.available.get(currency) ?? 0n);
      assert.equal(balance.held, this.held.get(currency) ?? 0n);
    }
  }
}
