import type { Context } from 'koa';
import { errors } from './errors.ts';

/** Reads the request body into a Buffer, refusing it once it passes `limitBytes`. */
export async function readRawBody(ctx: Context, limitBytes: number): Promise<Buffer> {
  const declared = Number(ctx.get('Content-Length') || '0');
  if (declared > limitBytes) throw errors.payloadTooLarge({ limit_bytes: limitBytes });
  const chunks: Buffer[] = [];
  let size = 0;
  // Leaving the loop early must not destroy the request: that resets the connection under a client
  // still sending, which then never reads the 413. The rest is read and dropped instead, for at most
  // the server's request timeout.
  for await (const chunk of ctx.req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limitBytes) break;
    chunks.push(chunk);
  }
  if (size > limitBytes) {
    ctx.req.resume();
    throw errors.payloadTooLarge({ limit_bytes: limitBytes });
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

/** A JSON body that may be left out: `{}` when the request has none (no length, or length 0, and no chunks). */
export async function readOptionalJsonBody(ctx: Context, limitBytes: number): Promise<unknown> {
  const chunked = ctx.get('Transfer-Encoding') !== '';
  if (!chunked && (ctx.get('Content-Length') === '' || ctx.get('Content-Length') === '0')) return {};
  return readJsonBody(ctx, limitBytes);
}
