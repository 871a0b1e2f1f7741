import type { Context } from 'koa';
import type { PageQuery, ReadModel } from '../../persistence/read-model.ts';
import { encodeCursor } from '../cursor.ts';
import { rowJson } from '../transaction-json.ts';

/** Answers one keyset page in the contract's shape: {data, next_cursor, has_more}. */
export async function sendPage(
  ctx: Context,
  readModel: ReadModel,
  query: Omit<PageQuery, 'created_from' | 'created_to'> & { created_from?: string; created_to?: string },
): Promise<void> {
  const { rows, has_more } = await readModel.page({
    ...query,
    created_from: query.created_from !== undefined ? new Date(query.created_from) : undefined,
    created_to: query.created_to !== undefined ? new Date(query.created_to) : undefined,
  });
  const last = rows[rows.length - 1];
  ctx.body = { data: rows.map(rowJson), next_cursor: has_more && last ? encodeCursor(last) : null, has_more };
}
