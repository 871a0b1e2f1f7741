import type { Context } from 'koa';
import type { PageQuery, ReadModel } from '../../persistence/read-model.ts';
import type { TransactionRow } from '../../persistence/transaction-row.ts';
import { encodeCursor } from '../cursor.ts';
import { rowJson } from '../transaction-json.ts';

/** A page as the API asks for it: the read model's query, with the instants as the client sent them. */
export type PageRequest = Omit<PageQuery, 'created_from' | 'created_to'> & {
  created_from?: string;
  created_to?: string;
};

/** One keyset page of transactions, newest first, and whether more follow (REST and GraphQL lists). */
export async function readPage(
  readModel: ReadModel,
  query: PageRequest,
): Promise<{ rows: TransactionRow[]; has_more: boolean }> {
  return readModel.page({
    ...query,
    created_from: query.created_from !== undefined ? new Date(query.created_from) : undefined,
    created_to: query.created_to !== undefined ? new Date(query.created_to) : undefined,
  });
}

/** Answers one keyset page in the contract's shape: {data, next_cursor, has_more}. */
export async function sendPage(ctx: Context, readModel: ReadModel, query: PageRequest): Promise<void> {
  const { rows, has_more } = await readPage(readModel, query);
  const last = rows[rows.length - 1];
  ctx.body = { data: rows.map(rowJson), next_cursor: has_more && last ? encodeCursor(last) : null, has_more };
}
