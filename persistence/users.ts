import type { Queryable, Sql } from './sql.ts';

export interface UserRow {
  id: string;
  name: string;
  email: string;
  created_at: Date;
  revoked_at: Date | null;
}

/** The users table: accounts and the digests of their API keys. */
export function createUserStore(sql: Sql) {
  return {
    /** Inserts a user; returns undefined when the email is already taken. */
    async insert(
      user: { id: string; name: string; email: string; api_key_hash: Buffer },
      tx: Queryable = sql,
    ): Promise<UserRow | undefined> {
      const rows = await tx<UserRow[]>`
        INSERT INTO users (id, name, email, api_key_hash)
        VALUES (${user.id}, ${user.name}, ${user.email}, ${user.api_key_hash})
        ON CONFLICT DO NOTHING
        RETURNING id, name, email, created_at, revoked_at`;
      return rows[0];
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
