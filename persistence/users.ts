import type { IdempotencyRecord, IdempotencyStore } from './idempotency.ts';
import type { Queryable, Sql } from './sql.ts';

export interface UserRow {
  id: string;
  name: string;
  email: string;
  created_at: Date;
  revoked_at: Date | null;
}

/** A user as the admin's list shows it: with how many keys it can authenticate with now. */
export interface ListedUser extends UserRow {
  api_keys_active: number;
}

export interface NewUser {
  id: string;
  name: string;
  email: string;
  /** The user's first API key: its id, digest and shown prefix (the key itself is never stored). */
  api_key: { id: string; hash: Buffer; prefix: string | null };
}

export interface UserSearch {
  /** A user id (exact), or text found in the name or the email (case-insensitive). */
  search?: string;
  /** Keyset position: users strictly older than (created_at, id). */
  after?: { created_at: Date; id: string };
  limit: number;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** `text` as a literal inside a LIKE pattern: its own `%`, `_` and `\` match only themselves. */
function likeLiteral(text: string): string {
  return text.replace(/[\\%_]/g, (c) => `\\${c}`);
}

/**
 * The users table and their first keys (the `api_keys` table holds every key: see api-keys.ts). A
 * user's creation records its idempotency answer in the same transaction, through `idempotency`.
 */
export function createUserStore(sql: Sql, idempotency: Pick<IdempotencyStore, 'insert'>) {
  /** The user and its first key in one statement; nothing when the email is taken. */
  async function insert(user: NewUser, tx: Queryable = sql): Promise<UserRow | undefined> {
    const rows = await tx<UserRow[]>`
      WITH created AS (
        INSERT INTO users (id, name, email) VALUES (${user.id}, ${user.name}, ${user.email})
        ON CONFLICT DO NOTHING
        RETURNING id, name, email, created_at, revoked_at
      ), key AS (
        INSERT INTO api_keys (id, user_id, key_hash, prefix, created_at)
        SELECT ${user.api_key.id}, id, ${user.api_key.hash}, ${user.api_key.prefix}, created_at FROM created
      )
      SELECT * FROM created`;
    return rows[0];
  }

  return {
    /** Inserts a user with its first key; returns undefined when the email is already taken. */
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

    /**
     * The active user holding the active key with this digest, with the stored digest for a
     * constant-time check and the key's id.
     */
    async findByKeyHash(hash: Buffer): Promise<(UserRow & { api_key_hash: Buffer; key_id: string }) | undefined> {
      const rows = await sql<(UserRow & { api_key_hash: Buffer; key_id: string })[]>`
        SELECT u.id, u.name, u.email, u.created_at, u.revoked_at, k.key_hash AS api_key_hash, k.id AS key_id
        FROM api_keys k JOIN users u ON u.id = k.user_id
        WHERE k.key_hash = ${hash} AND k.revoked_at IS NULL AND u.revoked_at IS NULL`;
      return rows[0];
    },

    /**
     * One page of users, newest first (keyset on created_at, id), one row more than `limit` to tell
     * whether more exist. A search that is a UUID finds that user; any other matches a substring of
     * the name or the email, case-insensitively.
     */
    async search(query: UserSearch): Promise<{ rows: ListedUser[]; has_more: boolean }> {
      const term = query.search?.trim();
      const pattern = term ? `%${likeLiteral(term)}%` : undefined;
      const match =
        term === undefined || term === ''
          ? sql`TRUE`
          : UUID.test(term)
            ? sql`u.id = ${term.toLowerCase()}`
            : sql`(u.name ILIKE ${pattern!} OR u.email ILIKE ${pattern!})`;
      const { after } = query;
      const rows = await sql<ListedUser[]>`
        SELECT u.id, u.name, u.email, u.created_at, u.revoked_at,
               (SELECT count(*)::int FROM api_keys k WHERE k.user_id = u.id AND k.revoked_at IS NULL) AS api_keys_active
        FROM users u
        WHERE ${match} AND ${after ? sql`(u.created_at, u.id) < (${after.created_at}, ${after.id})` : sql`TRUE`}
        ORDER BY u.created_at DESC, u.id DESC LIMIT ${query.limit + 1}`;
      return { rows: rows.slice(0, query.limit), has_more: rows.length > query.limit };
    },
  };
}

export type UserStore = ReturnType<typeof createUserStore>;
