import type { IdempotencyRecord, IdempotencyStore } from './idempotency.ts';
import type { Queryable, Sql } from './sql.ts';

export interface UserRow {
  id: string;
  name: string;
  email: string;
  created_at: Date;
  revoked_at: Date | null;
}

export interface NewUser {
  id: string;
  name: string;
  email: string;
  api_key_hash: Buffer;
}

/**
 * The users table: accounts and the digests of their API keys. A user's creation records its
 * idempotency answer in the same transaction, through `idempotency`.
 */
export function createUserStore(sql: Sql, idempotency: Pick<IdempotencyStore, 'insert'>) {
  async function insert(user: NewUser, tx: Queryable = sql): Promise<UserRow | undefined> {
    const rows = await tx<UserRow[]>`
      INSERT INTO users (id, name, email, api_key_hash)
      VALUES (${user.id}, ${user.name}, ${user.email}, ${user.api_key_hash})
      ON CONFLICT DO NOTHING
      RETURNING id, name, email, created_at, revoked_at`;
    return rows[0];
  }

  return {
    /** Inserts a user; returns undefined when the email is already taken. */
    insert,

    /**
     * Inserts a user and, in the same transaction, the idempotency record `answer` makes for it, so
     * that a retry finds the answer exactly when the user exists. Undefined (nothing written) when
     * the email is already taken.
     */
    async insertAnswered(user: NewUser, answer: (created: UserRow) => IdempotencyRecord): Promise<UserRow | undefined> {
      return sql.begin(async (tx) => {
        const created = await insert(user, tx);
        if (created) await idempotency.insert(answer(created), tx);
        return created;
      });
    },

    async findById(id: string): Promise<UserRow | undefined> {
      const rows = await sql<UserRow[]>`
        SELECT id, name, email, created_at, revoked_at FROM users WHERE id = ${id}`;
      return rows[0];
    },

    /** The active user whose key has this digest, with the stored digest for a constant-time check. */
    async findByKeyHash(hash: Buffer): Promise<(UserRow & { api_key_hash: Buffer }) | undefined> {
      const rows = await sql<(UserRow & { api_key_hash: Buffer })[]>`
        SELECT id, name, email, created_at, revoked_at, api_key_hash
        FROM users WHERE api_key_hash = ${hash} AND revoked_at IS NULL`;
      return rows[0];
    },

    async revoke(id: string): Promise<void> {
      await sql`UPDATE users SET revoked_at = now() WHERE id = ${id} AND revoked_at IS NULL`;
    },
  };
}

export type UserStore = ReturnType<typeof createUserStore>;
