-- API keys get a table of their own, so that a user can hold two during a rotation and revoke one
-- without the other. A key is still stored only as its SHA-256 digest; `prefix` is the key's first
-- characters, shown so that a person can tell keys apart (NULL for the keys issued before this table,
-- whose text was never kept). The users' keys move here, and users keep no digest of their own.
CREATE TABLE api_keys (
  id          uuid PRIMARY KEY,
  user_id     uuid NOT NULL REFERENCES users (id),
  key_hash    bytea NOT NULL UNIQUE CHECK (length(key_hash) = 32),
  prefix      text CHECK (length(prefix) <= 16),
  label       text CHECK (length(label) <= 100),
  created_at  timestamptz NOT NULL DEFAULT now(),
  revoked_at  timestamptz
);
CREATE INDEX api_keys_user ON api_keys (user_id, created_at);

INSERT INTO api_keys (id, user_id, key_hash, prefix, label, created_at)
  SELECT gen_random_uuid(), id, api_key_hash, NULL, NULL, created_at FROM users;

ALTER TABLE users DROP COLUMN api_key_hash;

-- The admin's user search: newest first, keyset on (created_at, id).
CREATE INDEX users_created ON users (created_at DESC, id DESC);
