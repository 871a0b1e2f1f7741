import type { z } from 'zod';
import { errors } from './errors.ts';

/** Where an input came from, named in a detail whose issue concerns the whole of it. */
export type InputPart = 'body' | 'query' | 'path' | 'headers';

/**
 * Parses input with a zod schema; a mismatch becomes a 400 listing each field and what is wrong. An
 * issue about the input as a whole names its part (`(query)`), and unknown keys are each named.
 */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown, part: InputPart = 'body'): z.infer<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const details = result.error.issues.flatMap((issue) => {
    const at = issue.path.map(String).join('.');
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((key) => ({ field: at ? `${at}.${key}` : key, message: 'is not a known field' }));
    }
    return [{ field: at || `(${part})`, message: issue.message }];
  });
  throw errors.validationError().with({ details: details.slice(0, 20) });
}
