import { z } from 'zod';

/** Request and response shapes of the API; the OpenAPI document is generated from these. */
export const uuid = z.uuid({ message: 'must be a UUID' });

export const createUserBody = z.strictObject({
  name: z.string().trim().min(1).max(200),
  email: z.email().max(320),
});

export const userIdParams = z.strictObject({ user_id: uuid });

const AMOUNT_MAX = 1_000_000_000_000;

/** Amounts on the wire: a JSON integer of minor units, 1 to 1e12. Strings and fractions are refused. */
export const amount = z
  .number({ message: 'must be a JSON number of minor units (e.g. 1050 for 10.50)' })
  .int('must be a whole number of minor units')
  .positive('must be greater than zero')
  .max(AMOUNT_MAX, `must be at most ${AMOUNT_MAX}`);

const metadata = z
  .record(z.string().min(1).max(40), z.string().max(500))
  .refine((value) => Object.keys(value).length <= 20, 'at most 20 keys');

/** The body of POST /deposits and /withdrawals, for the configured currencies. */
export function transactionBody(currencies: readonly string[]) {
  return z.strictObject({
    amount,
    currency: z.enum(currencies as [string, ...string[]], { message: `must be one of ${currencies.join(', ')}` }),
    user_id: uuid.optional(),
    description: z.string().max(500).optional(),
    metadata: metadata.optional(),
  });
}

const queryAmount = z
  .string()
  .regex(/^\d{1,13}$/, 'must be a whole number of minor units')
  .transform((value) => BigInt(value))
  .refine((value) => value <= BigInt(AMOUNT_MAX), `must be at most ${AMOUNT_MAX}`);

const pageQuery = {
  limit: z
    .string()
    .regex(/^\d{1,3}$/, 'must be an integer from 1 to 100')
    .transform(Number)
    .refine((value) => value >= 1 && value <= 100, 'must be an integer from 1 to 100')
    .optional(),
  cursor: z.string().max(200).optional(),
};

const filters = {
  status: z.enum(['pending', 'processing', 'succeeded', 'failed']).optional(),
  currency: z
    .string()
    .regex(/^[A-Z]{3}$/, 'must be an ISO 4217 code')
    .optional(),
  created_from: z.iso.datetime({ offset: true, message: 'must be an ISO 8601 date-time' }).optional(),
  created_to: z.iso.datetime({ offset: true, message: 'must be an ISO 8601 date-time' }).optional(),
  min_amount: queryAmount.optional(),
  max_amount: queryAmount.optional(),
};

/** Query of GET /deposits and /withdrawals. */
export const typedListQuery = z.strictObject({ ...pageQuery, ...filters, user_id: uuid.optional() });

/** Query of GET /users/{user_id}/transactions. */
export const historyQuery = z.strictObject({
  ...pageQuery,
  ...filters,
  type: z.enum(['deposit', 'withdrawal']).optional(),
});

export const transactionIdParams = z.strictObject({ id: uuid });
