import type { AccountState, Transaction } from '../../engine/account.ts';

/**
 * An account state with its open transactions as a plain object, for `assert.deepEqual`: two persistent
 * maps with the same entries may differ in their inner nodes (the order they were built in).
 */
export function plainState(
  state: AccountState | undefined,
): (Omit<AccountState, 'open'> & { open: Record<string, Transaction> }) | undefined {
  return state && { ...state, open: Object.fromEntries(state.open) };
}
