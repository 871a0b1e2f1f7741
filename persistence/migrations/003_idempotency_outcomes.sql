-- A key of an account command keeps what the command came to (the transaction it created, or why the
-- account refused it) as a value, not a rendered HTTP response: the engine knows no HTTP, and the edge
-- renders the outcome for the first answer and for every replay. Records of the edge's own handlers
-- (user creation) keep the response as sent. Exactly one of the two is set. `json`, not `jsonb`: it
-- keeps the text as written, so a replay repeats the client's metadata keys in their order.
ALTER TABLE idempotency_keys
  ADD COLUMN outcome json,
  ALTER COLUMN status_code DROP NOT NULL,
  ALTER COLUMN body DROP NOT NULL,
  ADD CONSTRAINT idempotency_keys_one_answer CHECK (
    (outcome IS NULL AND status_code IS NOT NULL AND body IS NOT NULL)
    OR (outcome IS NOT NULL AND status_code IS NULL AND body IS NULL));
