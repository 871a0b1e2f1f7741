/**
 * Every way the account refuses a command, named by the constraint it would break. They are values, not
 * HTTP: the edge gives each its status and message in its one catalogue (http/errors.ts).
 */
export const REJECTION_CODES = [
  /** A withdrawal of more than the available balance. */
  'insufficient_funds',
  /** A deposit that would take the balance past the largest amount the account holds exactly. */
  'balance_limit_exceeded',
  /** A transaction id the account already has open. */
  'transaction_exists',
] as const;

export type RejectionCode = (typeof REJECTION_CODES)[number];

export interface Rejection {
  kind: 'rejected';
  code: RejectionCode;
}

/** A rejection value (not an exception). */
export function reject(code: RejectionCode): Rejection {
  return { kind: 'rejected', code };
}
