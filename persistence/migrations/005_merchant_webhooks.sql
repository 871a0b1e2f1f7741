-- Merchant webhooks: the endpoints a user registers, and the outbox of deliveries to them. A delivery
-- row is inserted by the journal's own transaction (persistence/webhook-outbox.ts), so a committed
-- state change has its deliveries and nothing else does.
CREATE TABLE webhook_endpoints (
  id                    uuid PRIMARY KEY,
  user_id               uuid NOT NULL REFERENCES users (id),
  url                   text NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
  description           text CHECK (length(description) <= 500),
  -- Event types as `deposit.succeeded`, or `*` for every one.
  event_types           text[] NOT NULL CHECK (cardinality(event_types) BETWEEN 1 AND 20),
  -- Kept in clear: an HMAC needs the key itself. The previous secret signs too until it expires (rotation).
  secret                text NOT NULL,
  previous_secret       text,
  previous_expires_at   timestamptz,
  enabled               boolean NOT NULL DEFAULT true,
  disabled_reason       text,
  -- Failed attempts in a row to this endpoint (any delivery); a success resets it.
  consecutive_failures  integer NOT NULL DEFAULT 0 CHECK (consecutive_failures >= 0),
  created_at            timestamptz NOT NULL DEFAULT now(),
  updated_at            timestamptz NOT NULL DEFAULT now(),
  CHECK (enabled = (disabled_reason IS NULL))
);
-- What the journal's commit joins against: the enabled endpoints of the batch's users.
CREATE INDEX webhook_endpoints_user ON webhook_endpoints (user_id) WHERE enabled;
CREATE INDEX webhook_endpoints_page ON webhook_endpoints (user_id, created_at DESC, id DESC);

-- One row per (endpoint, transaction state change). `seq` is the journal's sequence number of the
-- change: a transaction's deliveries to one endpoint go out in its order. `next_attempt_at` is both the
-- retry schedule and the claim lease: a worker that claims a row moves it past its attempt's end, so a
-- killed worker's claim comes back by itself.
CREATE TABLE webhook_deliveries (
  id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  endpoint_id      uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
  user_id          uuid NOT NULL,
  event_id         text NOT NULL,
  event_type       text NOT NULL,
  transaction_id   uuid NOT NULL,
  seq              bigint NOT NULL,
  -- The transaction as it stood after the change (the read model's row, as the journal wrote it).
  data             jsonb NOT NULL,
  created_at       timestamptz NOT NULL,
  status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'succeeded', 'failed')),
  -- Attempts of the current round (a redelivery starts a new one) and when that round began.
  round_attempts   integer NOT NULL DEFAULT 0 CHECK (round_attempts >= 0),
  round_started_at timestamptz NOT NULL DEFAULT now(),
  next_attempt_at  timestamptz NOT NULL DEFAULT now(),
  -- Every attempt: {at, status_code, error, latency_ms}.
  attempts         jsonb NOT NULL DEFAULT '[]',
  completed_at     timestamptz,
  UNIQUE (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_order ON webhook_deliveries (endpoint_id, transaction_id, seq) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_page ON webhook_deliveries (user_id, created_at DESC, id DESC);
CREATE INDEX webhook_deliveries_endpoint_page ON webhook_deliveries (endpoint_id, created_at DESC, id DESC);
