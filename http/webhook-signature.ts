import { createHmac, timingSafeEqual } from 'node:crypto';

const SECRET_PREFIX = 'whsec_';
const TIMESTAMP = /^[0-9]{1,15}$/;

export type WebhookRefusal =
  'missing_headers' | 'bad_timestamp' | 'timestamp_too_old' | 'timestamp_too_new' | 'bad_signature';

export type WebhookVerification = { ok: true; id: string; timestamp_s: number } | { ok: false; reason: WebhookRefusal };

type IncomingHeaders = Readonly<Record<string, string | readonly string[] | undefined>>;

function header(headers: IncomingHeaders, name: string): string | undefined {
  for (const [key, value] of Object.entries(headers)) {
    if (key.toLowerCase() === name && typeof value === 'string' && value.length > 0) return value;
  }
  return undefined;
}

function secretKey(secret: string): Buffer {
  const key = Buffer.from(secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret, 'base64');
  if (key.length === 0) throw new RangeError('a webhook secret must decode to at least one byte');
  return key;
}

/**
 * Verifies a Standard Webhooks signature: `webhook-signature` must hold a `v1,<base64>` HMAC-SHA256 of
 * `id.timestamp.body` under one of `secrets` (several while they rotate), and the timestamp must lie
 * within `tolerance_s` of `now_s`. The body must be the raw bytes received, not a re-serialisation.
 */
export function verifyWebhook(input: {
  headers: IncomingHeaders;
  rawBody: Buffer;
  secrets: readonly string[];
  now_s: number;
  tolerance_s?: number;
}): WebhookVerification {
  const tolerance_s = input.tolerance_s ?? 300;
  const id = header(input.headers, 'webhook-id');
  const timestamp = header(input.headers, 'webhook-timestamp');
  const signatures = header(input.headers, 'webhook-signature');
  if (id === undefined || timestamp === undefined || signatures === undefined) {
    return { ok: false, reason: 'missing_headers' };
  }
  if (!TIMESTAMP.test(timestamp)) return { ok: false, reason: 'bad_timestamp' };
  const timestamp_s = Number(timestamp);
  if (input.now_s - timestamp_s > tolerance_s) return { ok: false, reason: 'timestamp_too_old' };
  if (timestamp_s - input.now_s > tolerance_s) return { ok: false, reason: 'timestamp_too_new' };

  // Schemes other than v1 are skipped, as the spec asks. The header's length is bounded by Node's
  // maximum header size, so the number of candidates is too.
  const candidates = signatures
    .split(' ')
    .filter((entry) => entry.startsWith('v1,'))
    .map((entry) => Buffer.from(entry.slice(3)));
  for (const secret of input.secrets) {
    const expected = Buffer.from(
      createHmac('sha256', secretKey(secret)).update(`${id}.${timestamp}.`).update(input.rawBody).digest('base64'),
    );
    // timingSafeEqual needs equal lengths; the length of a base64 HMAC-SHA256 is public anyway.
    if (candidates.some((candidate) => candidate.length === expected.length && timingSafeEqual(candidate, expected))) {
      return { ok: true, id, timestamp_s };
    }
  }
  return { ok: false, reason: 'bad_signature' };
}
