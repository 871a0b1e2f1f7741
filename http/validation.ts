import type { z } from 'zod';
import { errors } from './errors.ts';

/** Parses input with a zod schema; a mismatch becomes a 400 listing each field and what is wrong. */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown): z.infer<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const details = result.error.issues.slice(0, 20).map((issue) => ({
    field: issue.path.map(String).join('.') || '(body)',
    message: issue.message,
  }));
  throw errors.validationError().with({ details });
}
