-- Finished deliveries (succeeded, or failed for good) are deleted MERCHANT_WEBHOOKS_RETENTION_DAYS after
-- they finished (persistence/webhooks.ts, purgeFinished): this index finds them without reading the
-- pending ones or the whole table. A redelivery makes a finished delivery pending again, so it leaves it.
CREATE INDEX webhook_deliveries_finished ON webhook_deliveries (completed_at) WHERE status <> 'pending';
