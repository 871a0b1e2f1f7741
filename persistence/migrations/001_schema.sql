-- Users: the API key is never stored, only its SHA-256 digest.
CREATE TABLE users (
  id            uuid PRIMARY KEY,
  name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  email         text NOT NULL CHECK (length(email) BETWEEN 3 AND 320),
  api_key_hash  bytea NOT NULL UNIQUE CHECK (length(api_key_hash) = 32),
  created_at    timestamptz NOT NULL DEFAULT now(),
  revoked_at    timestamptz
);
CREATE UNIQUE INDEX users_email_unique ON users (lower(email));

-- Shard leases: the fencing epoch grows each time a shard changes hands; an append commits only
-- while the epoch it carries is still the shard's current one.
CREATE TABLE shard_leases (
  shard             integer PRIMARY KEY CHECK (shard >= 0),
  owner             text,
  epoch             bigint NOT NULL DEFAULT 0 CHECK (epoch >= 0),
  lease_expires_at  timestamptz,
  updated_at        timestamptz NOT NULL DEFAULT now()
);

-- The journal: the source of truth, one stream per user, append-only.
CREATE TABLE journal (
  user_id         uuid NOT NULL,
  seq             bigint NOT NULL CHECK (seq > 0),
  shard           integer NOT NULL,
  epoch           bigint NOT NULL,
  type            text NOT NULL,
  transaction_id  uuid,
  payload         jsonb NOT NULL,
  request_id      text,
  created_at      timestamptz NOT NULL,
  PRIMARY KEY (user_id, seq)
);
CREATE INDEX journal_transaction ON journal (transaction_id, seq) WHERE transaction_id IS NOT NULL;

-- Snapshots bound recovery; any of them may be discarded, the journal alone suffices.
CREATE TABLE snapshots (
  user_id     uuid NOT NULL,
  seq         bigint NOT NULL CHECK (seq > 0),
  state       jsonb NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, seq)
);

-- The transactions read model, written in the same commit as the journal rows it derives from.
CREATE TABLE transactions (
  id               uuid PRIMARY KEY,
  user_id          uuid NOT NULL,
  type             text NOT NULL CHECK (type IN ('deposit', 'withdrawal')),
  amount           bigint NOT NULL CHECK (amount > 0 AND amount <= 1000000000000),
  currency         char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
  status           text NOT NULL CHECK (status IN ('pending', 'processing', 'succeeded', 'failed')),
  description      text,
  metadata         jsonb,
  failure_code     text,
  failure_message  text,
  bank_reference   text,
  attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  request_id       text,
  created_at       timestamptz NOT NULL,
  updated_at       timestamptz NOT NULL,
  completed_at     timestamptz,
  CHECK ((status IN ('succeeded', 'failed')) = (completed_at IS NOT NULL)),
  CHECK ((status = 'failed') = (failure_code IS NOT NULL))
);
-- Keyset pages, newest first: per user, per user and type, and across users by type (admin lists).
CREATE INDEX transactions_user_page ON transactions (user_id, created_at DESC, id DESC);
CREATE INDEX transactions_user_type_page ON transactions (user_id, type, created_at DESC, id DESC);
CREATE INDEX transactions_type_page ON transactions (type, created_at DESC, id DESC);
-- What recovery and the payment workers look for after a restart.
CREATE INDEX transactions_open ON transactions (created_at) WHERE status IN ('pending', 'processing');

-- Idempotency records: the first response, byte for byte, scoped to the caller.
CREATE TABLE idempotency_keys (
  caller       text NOT NULL,
  key          text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
  fingerprint  text NOT NULL,
  user_id      uuid,
  status_code  integer NOT NULL CHECK (status_code BETWEEN 200 AND 599),
  body         text NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  expires_at   timestamptz NOT NULL,
  PRIMARY KEY (caller, key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);

-- Bank callbacks already applied, by their webhook-id.
CREATE TABLE webhook_inbox (
  webhook_id   text PRIMARY KEY CHECK (length(webhook_id) BETWEEN 1 AND 255),
  reference    uuid,
  payload      jsonb NOT NULL,
  received_at  timestamptz NOT NULL DEFAULT now()
);

-- Transactions whose payment gave up after its last attempt, for an admin to look at and retry.
CREATE TABLE dead_letters (
  id              uuid PRIMARY KEY,
  transaction_id  uuid NOT NULL,
  user_id         uuid NOT NULL,
  reason          text NOT NULL,
  attempts        integer NOT NULL CHECK (attempts >= 0),
  last_error      text,
  created_at      timestamptz NOT NULL DEFAULT now(),
  retried_at      timestamptz
);
CREATE UNIQUE INDEX dead_letters_open ON dead_letters (transaction_id) WHERE retried_at IS NULL;
CREATE INDEX dead_letters_page ON dead_letters (created_at DESC, id DESC);
