/** Money is an integer count of a currency's minor units (cents), a bigint inside the process. */
export const AMOUNT_MAX = 1_000_000_000_000n;

/** A balance may not grow past what a JSON number carries exactly. */
export const BALANCE_MAX = BigInt(Number.MAX_SAFE_INTEGER);

/** Converts minor units for the wire (JSON numbers, Stripe's convention); exact below 2^53. */
export function toWire(amount: bigint): number {
  if (amount > BALANCE_MAX || amount < -BALANCE_MAX) throw new RangeError(`amount ${amount} is not exact as a number`);
  return Number(amount);
}
