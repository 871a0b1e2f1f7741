import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { loadTracingConfig } from '../config.ts';
import { shardOf } from '../engine/shards.ts';
import type { Gateway } from '../gateway.ts';
import { createLogger } from '../logger.ts';
import { startTracing, type Tracing } from '../tracing-export.ts';
import { FAST_BANK } from './support/bank.ts';
import { client, pairIds, startGatewayPair, createUserOwnedBy } from './support/gateway.ts';
import { KIND, startOtlpSink, type ReceivedSpan } from './support/otlp-sink.ts';
import { eventually } from './support/time.ts';

// Tracing on, exporting over OTLP/HTTP to a collector of the test's own: one deposit is one trace from
// the POST to its settlement, through the actor, the journal's commit, the bank (the simulator, over
// HTTP) and its signed callback; and across two gateways, the owner's span is the forwarder's child.

const SHARDS = 8;
/** The pair's instance ids (startGatewayPair picks them the same way). */
const [ID_A, ID_B] = pairIds('trace', SHARDS);
let sink: Awaited<ReturnType<typeof startOtlpSink>>;
let tracing: Tracing;
let a: Gateway;
let b: Gateway;
/** A user whose account b owns: a request for it at a is forwarded to b. */
let user: { id: string; api_key: string };

before(async () => {
  sink = await startOtlpSink();
  tracing = startTracing(
    loadTracingConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: sink.url }, 'payment-gateway'),
    createLogger('silent'),
  );
  [a, b] = await startGatewayPair('trace', SHARDS, FAST_BANK);
  user = await createUserOwnedBy(a, b, SHARDS, 'Traced');
});
after(async () => {
  await a?.close();
  await b?.close();
  await tracing?.shutdown();
  await sink?.close();
});

/** A W3C traceparent of a caller's own span: its trace id and span id. */
function callerSpan() {
  const traceId = randomBytes(16).toString('hex');
  const spanId = randomBytes(8).toString('hex');
  return { traceId, spanId, header: `00-${traceId}-${spanId}-01` };
}

/** The spans of `traceId` received so far, once `ready` holds of them (flushing the exporter meanwhile). */
function traceOnceReady(traceId: string, ready: (spans: ReceivedSpan[]) => boolean): Promise<ReceivedSpan[]> {
  return eventually(async () => {
    await tracing.flush();
    const spans = sink.spans.filter((span) => span.traceId === traceId);
    return ready(spans) ? spans : undefined;
  }, 20_000);
}

function one(spans: ReceivedSpan[], what: string, match: (span: ReceivedSpan) => boolean): ReceivedSpan {
  const found = spans.filter(match);
  assert.equal(found.length, 1, `one ${what}, found ${found.map((span) => span.name).join(', ') || 'none'}`);
  return found[0]!;
}

const childOf = (parent: ReceivedSpan) => (span: ReceivedSpan) => span.parentSpanId === parent.spanId;

async function deposit(via: Gateway, traceparent: string, requestId: string) {
  const answer = await client(via.url)('POST', '/api/v1/deposits', {
    key: user.api_key,
    body: { amount: 4242, currency: 'USD' },
    idempotencyKey: crypto.randomUUID(),
    headers: { traceparent, 'x-request-id': requestId },
  });
  assert.equal(answer.status, 202, answer.text);
  return answer.json.id as string;
}

test('one deposit is one trace: the POST, the actor, the commit, the bank, its callback and the settlement', async () => {
  const caller = callerSpan();
  const id = await deposit(b, caller.header, 'req-traced-0001');
  const isCallback = (span: ReceivedSpan) => span.kind === KIND.server && span.name === 'POST /webhooks/bank-callback';
  // The callback's client span ends last, once the gateway has answered it.
  const spans = await traceOnceReady(caller.traceId, (received) =>
    received.some((span) => span.kind === KIND.client && span.name === 'POST /webhooks/bank-callback'),
  );

  // The edge continues the caller's traceparent, with the request's attributes.
  const edge = one(spans, 'edge span', (span) => span.kind === KIND.server && span.name === 'POST /api/v1/deposits');
  assert.equal(edge.parentSpanId, caller.spanId);
  assert.equal(edge.service, 'payment-gateway');
  assert.deepEqual(
    {
      method: edge.attributes['http.request.method'],
      path: edge.attributes['url.path'],
      route: edge.attributes['http.route'],
      status: edge.attributes['http.response.status_code'],
      request_id: edge.attributes['gateway.request_id'],
      transaction_id: edge.attributes['payment.transaction_id'],
      user_id: edge.attributes['user.id'],
      shard: edge.attributes['gateway.shard'],
      instance: edge.attributes['gateway.instance_id'],
    },
    {
      method: 'POST',
      path: '/api/v1/deposits',
      route: '/api/v1/deposits',
      status: 202,
      request_id: 'req-traced-0001',
      transaction_id: id,
      user_id: user.id,
      shard: shardOf(user.id, SHARDS),
      instance: ID_B,
    },
  );

  // The actor's turn that created it (the first of the edge's children: the payment worker's come
  // after), and the journal commit that made it durable: its child, or (when the batch began with
  // another account's append) a commit that links to it.
  const turns = spans.filter((span) => span.name === 'account turn' && childOf(edge)(span));
  const creating = turns.sort((x, y) => (x.start_ns < y.start_ns ? -1 : 1))[0];
  assert.ok(creating, 'the creating turn is a child of the edge span');
  assert.equal(creating.kind, KIND.internal);
  assert.equal(creating.attributes['user.id'], user.id);
  assert.equal(creating.attributes['gateway.shard'], shardOf(user.id, SHARDS));
  const committed = (turn: ReceivedSpan) =>
    sink.spans.some(
      (span) =>
        span.name === 'journal commit' &&
        (span.parentSpanId === turn.spanId || span.links.some((link) => link.spanId === turn.spanId)),
    );
  assert.ok(committed(creating), 'the creation reaches its commit');

  // The callback carries the context of the transfer's submit: walking up from its client span in the
  // bank, the bank's server span for the submit, and the payment worker's client span for that call
  // (its traceparent sent), the edge span's child.
  const callbackSent = one(
    spans,
    'callback sent',
    (span) => span.kind === KIND.client && span.name === 'POST /webhooks/bank-callback',
  );
  assert.equal(callbackSent.attributes['payment.transaction_id'], id);
  const bankSubmit = one(spans, 'bank submit', (span) => span.spanId === callbackSent.parentSpanId);
  assert.equal(bankSubmit.kind, KIND.server);
  assert.match(bankSubmit.name, /^POST \/bank\/v1\/transfers/);
  const bankCall = one(spans, 'bank call', (span) => span.spanId === bankSubmit.parentSpanId);
  assert.equal(bankCall.kind, KIND.client);
  assert.equal(bankCall.name, 'POST /bank/v1/transfers');
  assert.equal(bankCall.parentSpanId, edge.spanId);
  assert.equal(bankCall.attributes['payment.transaction_id'], id);

  // The gateway's server span for the callback, and the settling turn, in the same trace.
  const callback = one(spans, 'callback received', (span) => isCallback(span) && childOf(callbackSent)(span));
  assert.equal(callback.attributes['http.response.status_code'], 200);
  assert.equal(callback.attributes['payment.transaction_id'], id);
  const settling = one(spans, 'settling turn', (span) => span.name === 'account turn' && childOf(callback)(span));
  assert.ok(committed(settling), 'the settlement reaches its commit');

  const answer = await client(b.url)('GET', `/api/v1/deposits/${id}`, { key: user.api_key });
  assert.equal(answer.json.status, 'succeeded');
});

test("a forwarded deposit: the owner's span is the child of the forwarding instance's span", async () => {
  const caller = callerSpan();
  const id = await deposit(a, caller.header, 'req-traced-0002');
  const isOwner = (span: ReceivedSpan) => span.kind === KIND.server && span.name === 'POST /internal/v1/commands';
  // The edge's span ends last, after the owner's answer came back.
  const spans = await traceOnceReady(caller.traceId, (received) => {
    const owner = received.find(isOwner);
    return (
      owner !== undefined &&
      received.some((span) => span.name === 'account turn' && childOf(owner)(span)) &&
      received.some((span) => span.kind === KIND.server && span.name === 'POST /api/v1/deposits')
    );
  });

  const edge = one(spans, 'edge span', (span) => span.kind === KIND.server && span.name === 'POST /api/v1/deposits');
  assert.equal(edge.parentSpanId, caller.spanId);
  assert.equal(edge.attributes['gateway.instance_id'], ID_A);
  const forward = one(spans, 'forwarding', (span) => span.kind === KIND.client && childOf(edge)(span));
  assert.equal(forward.name, 'POST /internal/v1/commands');
  const owner = one(spans, 'owner span', (span) => isOwner(span) && childOf(forward)(span));
  assert.equal(owner.attributes['gateway.instance_id'], ID_B);
  assert.equal(owner.attributes['gateway.request_id'], 'req-traced-0002');
  assert.equal(owner.attributes['payment.transaction_id'], id);
  assert.equal(owner.attributes['http.response.status_code'], 202);
  assert.equal(owner.attributes['gateway.shard'], shardOf(user.id, SHARDS));
  one(spans, "the owner's turn", (span) => span.name === 'account turn' && childOf(owner)(span));
});
