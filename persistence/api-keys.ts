import type { IdempotencyRecord, IdempotencyStore } from './idempotency.ts';
import type { Sql } from './sql.ts';

/** A key as kept: its digest is never read back out of this module. */
export interface ApiKeyRow {
  id: string;
  user_id: string;
  label: string | null;
  prefix: string | null;
  created_at: Date;
  revoked_at: Date | null;
}

export interface NewApiKey {
  id: string;
  user_id: string;
  hash: Buffer;
  prefix: string;
  label: string | null;
}

/** What adding a key came to: the key, or why not (nothing was written then). */
export type KeyAdded =
  | { kind: 'added'; key: ApiKeyRow }
  | { kind: 'no_user' }
  | { kind: 'too_many'; active_max: number }
  /** Another request with the same idempotency key recorded its answer first. */
  | { kind: 'key_in_use' };

/** What revoking a key came to. */
export type KeyRevoked =
  /** The key, revoked now or before (its first revocation time kept), and its digest. */
  { kind: 'revoked'; key: ApiKeyRow; hash: Buffer } | { kind: 'no_key' } | { kind: 'key_in_use' };

/** Thrown inside a transaction to roll it back. */
class Rollback extends Error {}

const COLUMNS = 'id, user_id, label, prefix, created_at, revoked_at';

/**
 * The `api_keys` table: every user's keys, active and revoked. Adding and revoking record the
 * request's idempotency answer in the same transaction, so a retry finds it exactly when the change
 * is there.
 */
export function createApiKeyStore(sql: Sql, idempotency: Pick<IdempotencyStore, 'insert'>) {
  return {
    /** A user's keys, oldest first. */
    async list(user_id: string): Promise<ApiKeyRow[]> {
      return sql<ApiKeyRow[]>`
        SELECT ${sql.unsafe(COLUMNS)} FROM api_keys WHERE user_id = ${user_id} ORDER BY created_at, id`;
    },

    /**
     * Adds a key unless the user (an active one) already holds `active_max` active keys. The user's
     * row is locked for the transaction, so two concurrent additions cannot both pass the count.
     */
    async addAnswered(
      key: NewApiKey,
      active_max: number,
      answer: (added: ApiKeyRow) => IdempotencyRecord,
    ): Promise<KeyAdded> {
      try {
        return await sql.begin(async (tx): Promise<KeyAdded> => {
          const user = await tx`SELECT 1 FROM users WHERE id = ${key.user_id} AND revoked_at IS NULL FOR UPDATE`;
          if (user.length === 0) return { kind: 'no_user' };
          const [count] = await tx<{ active: number }[]>`
            SELECT count(*)::int AS active FROM api_keys WHERE user_id = ${key.user_id} AND revoked_at IS NULL`;
          if (count!.active >= active_max) return { kind: 'too_many', active_max };
          const [added] = await tx<ApiKeyRow[]>`
            INSERT INTO api_keys (id, user_id, key_hash, prefix, label)
            VALUES (${key.id}, ${key.user_id}, ${key.hash}, ${key.prefix}, ${key.label})
            RETURNING ${sql.unsafe(COLUMNS)}`;
          if (!(await idempotency.insert(answer(added!), tx))) throw new Rollback();
          return { kind: 'added', key: added! };
        });
      } catch (error) {
        if (error instanceof Rollback) return { kind: 'key_in_use' };
        throw error;
      }
    },

    /**
     * Revokes one of the user's keys (a key revoked already keeps its first time), with its digest so
     * that this process can forget the key at once.
     */
    async revokeAnswered(
      user_id: string,
      key_id: string,
      answer: (revoked: ApiKeyRow) => IdempotencyRecord,
    ): Promise<KeyRevoked> {
      try {
        return await sql.begin(async (tx): Promise<KeyRevoked> => {
          const [row] = await tx<(ApiKeyRow & { key_hash: Buffer })[]>`
            UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
            WHERE id = ${key_id} AND user_id = ${user_id}
            RETURNING ${sql.unsafe(COLUMNS)}, key_hash`;
          if (!row) return { kind: 'no_key' };
          const { key_hash: hash, ...key } = row;
          if (!(await idempotency.insert(answer(key), tx))) throw new Rollback();
          return { kind: 'revoked', key, hash };
        });
      } catch (error) {
        if (error instanceof Rollback) return { kind: 'key_in_use' };
        throw error;
      }
    },
  };
}

export type ApiKeyStore = ReturnType<typeof createApiKeyStore>;
