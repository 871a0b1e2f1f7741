import { defineError } from '../http/errors.ts';

/**
 * The errors of the bank's own API. The bank is another service with a contract of its own, which
 * engine/bank-client.ts reads (a refusal's code becomes the failure code `bank_<code>`), so its codes are
 * kept out of the gateway's catalogue: there they would claim the gateway answers 504 `bank_timeout`, and
 * a change to a gateway message would change the bank's contract. It shares the catalogue's machinery and
 * the edge's plumbing (createApp, readJsonBody, parseInput), whose protocol errors (`validation_error`,
 * `malformed_json`, `not_found`, …) are the gateway catalogue's own entries.
 */
export const bankErrors = {
  invalidRequest: defineError(400, 'invalid_request', '{reason}'),
  referenceReused: defineError(422, 'reference_reused', 'This reference belongs to a transfer with other details.'),
  bankUnavailable: defineError(503, 'bank_unavailable', 'The bank is unavailable; retry with the same reference.', {
    'Retry-After': '1',
  }),
  bankTimeout: defineError(504, 'bank_timeout', 'The bank did not answer.'),
} as const;
