/** Every way the account refuses a command, in one catalogue; the edge maps them to HTTP in one place. */
export const REJECTIONS = {
  insufficient_funds: { status: 422, message: 'The amount is more than the available balance.' },
  balance_limit_exceeded: { status: 422, message: 'This deposit would take the balance past its limit.' },
  transaction_exists: { status: 409, message: 'A transaction with this id already exists.' },
} as const;

export type RejectionCode = keyof typeof REJECTIONS;

export interface Rejection {
  kind: 'rejected';
  code: RejectionCode;
  message: string;
}

/** A rejection value (not an exception) with its catalogue message. */
export function reject(code: RejectionCode): Rejection {
  return { kind: 'rejected', code, message: REJECTIONS[code].message };
}
