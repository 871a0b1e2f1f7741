import type { Context } from 'koa';
import { errors } from './errors.ts';

/** Reads the request body into a Buffer, refusing it once it passes `limitBytes`. */
export async function readRawBody(ctx: Context, limitBytes: number): Promise<Buffer> {
  const declared = Number(ctx.get('Content-Length') || '0');
  if (declared > limitBytes) throw errors.bodyTooLarge(limitBytes);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limitBytes) throw errors.bodyTooLarge(limitBytes);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** Reads and parses a JSON body: 415 for another media type, 413 when too large, 400 when malformed. */
export async function readJsonBody(ctx: Context, limitBytes: number): Promise<unknown> {
  if (!ctx.is('application/json')) throw errors.unsupportedMediaType();
  const raw = await readRawBody(ctx, limitBytes);
  ctx.state.rawBody = raw;
  try {
    return JSON.parse(raw.toString('utf8')) as unknown;
  } catch {
    throw errors.malformedJson();
  }
}
