-- The open-payment sweep pages through the open transactions oldest first, keyset on (created_at, id):
-- the partial index of open statuses gets the id too, so that each page starts where the last ended.
DROP INDEX transactions_open;
CREATE INDEX transactions_open ON transactions (created_at, id) WHERE status IN ('pending', 'processing');
