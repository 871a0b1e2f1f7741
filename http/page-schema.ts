import { z } from 'zod';

/** The shape of a keyset page of `item`s, newest first, as every list answers (named `id` in OpenAPI). */
export function page<T extends z.ZodType>(item: T, id: string) {
  return z
    .object({
      data: z.array(item),
      next_cursor: z.string().nullable().meta({ description: 'Pass as `cursor` for the next page; null at the end.' }),
      has_more: z.boolean(),
    })
    .meta({ id });
}
