import { z } from 'zod';
import { ALL_EVENTS, WEBHOOK_EVENT_TYPES } from '../engine/webhook-events.ts';
import type { Operation } from './openapi-operations.ts';
import { page } from './page-schema.ts';
import { dateTime, transaction } from './response-schemas.ts';
import {
  createWebhookEndpointBody,
  uuid,
  webhookDeliveryListQuery,
  webhookEndpointListQuery,
  webhookEndpointParams,
} from './schemas.ts';

// The merchant webhooks' part of the OpenAPI document: the shapes of endpoints and deliveries, the
// examples (Ada's shop receives her deposits' events), and the operations.

export const webhookEndpoint = z
  .object({
    id: uuid,
    user_id: uuid,
    url: z.string(),
    description: z.string().nullable(),
    event_types: z
      .array(z.string())
      .meta({ description: `Among ${WEBHOOK_EVENT_TYPES.join(', ')}; or \`${ALL_EVENTS}\`.` }),
    enabled: z.boolean(),
    disabled_reason: z.string().nullable().meta({ description: 'Why it was disabled after a run of failures.' }),
    created_at: dateTime,
    updated_at: dateTime,
  })
  .meta({ id: 'WebhookEndpoint' });

export const createdWebhookEndpoint = webhookEndpoint
  .extend({
    secret: z.string().nullable().meta({
      description: 'The signing secret (`whsec_…`), shown this once; null when the answer is replayed.',
    }),
  })
  .meta({ id: 'CreatedWebhookEndpoint' });

export const rotatedWebhookEndpoint = createdWebhookEndpoint
  .extend({
    previous_secret_expires_at: dateTime
      .nullable()
      .meta({ description: 'Until then the old secret signs too; null when the answer is replayed.' }),
  })
  .meta({ id: 'RotatedWebhookEndpoint' });

export const webhookDelivery = z
  .object({
    id: uuid,
    endpoint_id: uuid,
    user_id: uuid,
    event_id: z
      .string()
      .meta({ description: "The `webhook-id` header and the body's `id`: the same on every attempt." }),
    event_type: z.string(),
    transaction_id: uuid,
    status: z.enum(['pending', 'succeeded', 'failed']),
    attempts: z.array(
      z.object({
        at: dateTime,
        status_code: z.number().int().nullable().meta({ description: 'The HTTP status; null when none came.' }),
        error: z.string().nullable().meta({ description: 'Why no status came (timeout, refused, connection).' }),
        latency_ms: z.number().int(),
      }),
    ),
    next_attempt_at: dateTime.nullable(),
    created_at: dateTime,
    completed_at: dateTime.nullable(),
  })
  .meta({ id: 'WebhookDelivery' });

/** One delivery with the event it sends: the request's body, as every attempt carries it. */
export const webhookDeliveryWithEvent = webhookDelivery
  .extend({
    event: z
      .object({
        id: z.string().meta({ description: 'The `webhook-id`, as `event_id`.' }),
        type: z.string(),
        created_at: dateTime,
        data: transaction,
      })
      .meta({ description: 'The body each attempt sends (signed as Standard Webhooks says, in the headers).' }),
  })
  .meta({ id: 'WebhookDeliveryWithEvent' });

const ADA = '01a211fb-c978-73f8-b18b-45b8e44da37c';
const DEPOSIT = '01a211fd-4717-79bc-a44f-1fe8e23ae8dd';
const ENDPOINT = '01a211fc-0a41-7b52-9d0e-3c6f1a2b4d5e';
const DELIVERY = '01a211fd-4a20-7e61-8b2c-5d7e9f0a1b2c';

const endpointSample: z.output<typeof webhookEndpoint> = {
  id: ENDPOINT,
  user_id: ADA,
  url: 'https://shop.example/hooks/payments',
  description: 'Order fulfilment',
  event_types: ['deposit.succeeded', 'deposit.failed'],
  enabled: true,
  disabled_reason: null,
  created_at: '2026-11-25T09:14:40.001Z',
  updated_at: '2026-11-25T09:14:40.001Z',
};
const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
const deliverySample: z.output<typeof webhookDelivery> = {
  id: DELIVERY,
  endpoint_id: ENDPOINT,
  user_id: ADA,
  event_id: 'evt_3c9a4e1b7f20d58a6b1c2d3e4f5a6b7c',
  event_type: 'deposit.succeeded',
  transaction_id: DEPOSIT,
  status: 'succeeded',
  attempts: [
    { at: '2026-11-25T09:15:44.180Z', status_code: 503, error: null, latency_ms: 41 },
    { at: '2026-11-25T09:15:51.902Z', status_code: 200, error: null, latency_ms: 38 },
  ],
  next_attempt_at: null,
  created_at: '2026-11-25T09:15:44.118Z',
  completed_at: '2026-11-25T09:15:51.940Z',
};

const json = <T extends z.ZodType>(schema: T, description: string, example: z.output<T>) => ({
  description,
  content: { 'application/json': { schema, example } },
});

const TAG = 'Merchant webhooks';

/** The endpoints and the delivery log. */
export function webhookOperations(deposit: z.output<typeof transaction>): Operation[] {
  const endpointPage = page(webhookEndpoint, 'WebhookEndpointPage');
  const deliveryPage = page(webhookDelivery, 'WebhookDeliveryPage');
  const endpointParams = { params: webhookEndpointParams };
  return [
    {
      method: 'post',
      path: '/api/v1/webhook-endpoints',
      operationId: 'createWebhookEndpoint',
      tag: TAG,
      summary: 'Register an endpoint for transaction events',
      description:
        "Each status change of the user's deposits and withdrawals of the chosen types is POSTed to `url` as a " +
        'Standard Webhooks request signed with the secret, which this answer shows once. The URL must be ' +
        '`https` on public addresses. The admin names the user in `user_id`.',
      access: 'caller',
      request: {
        body: {
          required: true,
          content: {
            'application/json': {
              schema: createWebhookEndpointBody,
              examples: {
                some: {
                  summary: 'settled deposits',
                  value: {
                    url: endpointSample.url,
                    event_types: endpointSample.event_types,
                    description: 'Order fulfilment',
                  },
                },
                all: { summary: 'every event', value: { url: endpointSample.url, event_types: [ALL_EVENTS] } },
              },
            },
          },
        },
      },
      answers: {
        201: json(createdWebhookEndpoint, 'Registered; `secret` is shown this once.', {
          ...endpointSample,
          secret: SECRET,
        }),
      },
      errors: ['validation_error', 'not_found'],
    },
    {
      method: 'get',
      path: '/api/v1/webhook-endpoints',
      operationId: 'listWebhookEndpoints',
      tag: TAG,
      summary: 'List endpoints',
      description: "A user sees their own; the admin sees all, or one user's with `user_id`. Newest first.",
      access: 'caller',
      request: { query: webhookEndpointListQuery },
      answers: {
        200: json(endpointPage, 'A page of endpoints.', { data: [endpointSample], next_cursor: null, has_more: false }),
      },
      errors: ['validation_error', 'invalid_cursor', 'not_found'],
    },
    {
      method: 'get',
      path: '/api/v1/webhook-endpoints/{id}',
      operationId: 'getWebhookEndpoint',
      tag: TAG,
      summary: 'An endpoint (never its secret)',
      access: 'caller',
      request: endpointParams,
      answers: { 200: json(webhookEndpoint, 'The endpoint.', endpointSample) },
      errors: ['validation_error', 'not_found'],
      missing: 'webhook endpoint',
    },
    {
      method: 'delete',
      path: '/api/v1/webhook-endpoints/{id}',
      operationId: 'deleteWebhookEndpoint',
      tag: TAG,
      summary: 'Delete an endpoint and its delivery log',
      access: 'caller',
      request: endpointParams,
      answers: { 204: { description: 'Deleted; nothing more is sent to it.' } },
      errors: ['validation_error', 'not_found'],
      missing: 'webhook endpoint',
    },
    {
      method: 'post',
      path: '/api/v1/webhook-endpoints/{id}/rotate-secret',
      operationId: 'rotateWebhookSecret',
      tag: TAG,
      summary: 'A new signing secret; the old one keeps signing for 24 hours',
      description:
        'Until `previous_secret_expires_at` every request carries two signatures in `webhook-signature`, ' +
        'one per secret, so a receiver can switch over without refusing a request.',
      access: 'caller',
      request: endpointParams,
      answers: {
        200: json(rotatedWebhookEndpoint, 'The endpoint and its new secret, shown this once.', {
          ...endpointSample,
          updated_at: '2026-11-26T10:02:11.640Z',
          secret: 'whsec_QmFzZTY0IHNlY3JldCBmb3IgdGVzdHM1',
          previous_secret_expires_at: '2026-11-27T10:02:11.640Z',
        }),
      },
      errors: ['validation_error', 'not_found'],
      missing: 'webhook endpoint',
    },
    {
      method: 'post',
      path: '/api/v1/webhook-endpoints/{id}/enable',
      operationId: 'enableWebhookEndpoint',
      tag: TAG,
      summary: 'Enable an endpoint again after it was disabled',
      description: 'Its count of failures starts again, and the deliveries that waited go out.',
      access: 'caller',
      request: endpointParams,
      answers: { 200: json(webhookEndpoint, 'The endpoint, enabled.', endpointSample) },
      errors: ['validation_error', 'not_found'],
      missing: 'webhook endpoint',
    },
    {
      method: 'get',
      path: '/api/v1/webhook-deliveries',
      operationId: 'listWebhookDeliveries',
      tag: TAG,
      summary: 'The delivery log: each event sent, with every attempt',
      description:
        'Filter by endpoint, event type and status. A user sees their own; the admin sees all. Newest first.',
      access: 'caller',
      request: { query: webhookDeliveryListQuery },
      answers: {
        200: json(deliveryPage, 'A page of deliveries.', {
          data: [deliverySample],
          next_cursor: null,
          has_more: false,
        }),
      },
      errors: ['validation_error', 'invalid_cursor', 'not_found'],
    },
    {
      method: 'get',
      path: '/api/v1/webhook-deliveries/{id}',
      operationId: 'getWebhookDelivery',
      tag: TAG,
      summary: 'A delivery, its attempts, and the event it sends',
      description:
        'The event is the body of every attempt, as the endpoint receives it; finished deliveries are kept ' +
        'for `MERCHANT_WEBHOOKS_RETENTION_DAYS` (30 by default).',
      access: 'caller',
      request: endpointParams,
      answers: {
        200: json(webhookDeliveryWithEvent, 'The delivery and its event.', {
          ...deliverySample,
          event: {
            id: deliverySample.event_id,
            type: deliverySample.event_type,
            created_at: deliverySample.created_at,
            data: deposit,
          },
        }),
      },
      errors: ['validation_error', 'not_found'],
      missing: 'webhook delivery',
    },
    {
      method: 'post',
      path: '/api/v1/webhook-deliveries/{id}/redeliver',
      operationId: 'redeliverWebhook',
      tag: TAG,
      summary: 'Send a delivery again now, with the same webhook-id',
      description: 'A new round of attempts on the retry schedule, whatever became of the earlier ones.',
      access: 'caller',
      request: endpointParams,
      answers: {
        202: json(webhookDelivery, 'Queued for an attempt now.', {
          ...deliverySample,
          status: 'pending',
          next_attempt_at: '2026-11-26T10:05:00.000Z',
          completed_at: null,
        }),
      },
      errors: ['validation_error', 'not_found'],
      missing: 'webhook delivery',
    },
  ];
}
