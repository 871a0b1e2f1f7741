import { errors } from './errors.ts';
import { storableInstant } from './schemas.ts';

/** An opaque page cursor: the keyset position (created_at, id) of the last row, base64url JSON. */
export function encodeCursor(row: { created_at: Date; id: string }): string {
  return Buffer.from(JSON.stringify([row.created_at.toISOString(), row.id])).toString('base64url');
}

/** Decodes a cursor; anything that is not one of ours is a 400. */
export function decodeCursor(cursor: string): { created_at: Date; id: string } {
  try {
    const [at, id] = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown[];
    const created_at = new Date(String(at));
    const valid =
      typeof at === 'string' &&
      typeof id === 'string' &&
      storableInstant(created_at.getTime()) &&
      /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(id);
    if (valid) return { created_at, id };
  } catch {
    // Falls through to the 400 below.
  }
  throw errors.invalidCursor();
}
