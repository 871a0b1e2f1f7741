import { z } from 'zod';

/** Request and response shapes of the API; the OpenAPI document is generated from these. */
export const uuid = z.uuid({ message: 'must be a UUID' });

export const createUserBody = z.strictObject({
  name: z.string().trim().min(1).max(200),
  email: z.email().max(320),
});

export const userIdParams = z.strictObject({ user_id: uuid });
