import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { loadTracingConfig } from '../config.ts';
import type { Gateway } from '../gateway.ts';
import { createLogger } from '../logger.ts';
import { tracingOn } from '../tracing.ts';
import { startTracing } from '../tracing-export.ts';
import { client, createUser, startTestGateway } from './support/gateway.ts';
import { startOtlpSink } from './support/otlp-sink.ts';
import { eventually } from './support/time.ts';

// Tracing off (no endpoint configured): nothing is started, nothing is exported, and no trace context
// leaves the gateway, not even a client's own traceparent.

let sink: Awaited<ReturnType<typeof startOtlpSink>>;
let gateway: Gateway;
const bankCalls: IncomingHttpHeaders[] = [];
const bank = createServer((request, response) => {
  bankCalls.push(request.headers);
  request.resume();
  request.on('end', () =>
    response
      .writeHead(202, { 'content-type': 'application/json' })
      .end(JSON.stringify({ bank_reference: `bnk_${crypto.randomUUID()}`, status: 'processing' })),
  );
});

before(async () => {
  sink = await startOtlpSink();
  bank.listen(0, '127.0.0.1');
  await once(bank, 'listening');
  const { port } = bank.address() as AddressInfo;
  gateway = await startTestGateway({ BANK_URL: `http://127.0.0.1:${port}` });
});
after(async () => {
  await gateway?.close();
  bank.close();
  await sink?.close();
});

test('with no endpoint, tracing starts nothing and no traceparent reaches the bank', async () => {
  // Everything else set, as a deployment that has not named a collector yet would have it.
  const tracing = startTracing(
    loadTracingConfig({ OTEL_SERVICE_NAME: 'gateway-off', OTEL_TRACES_SAMPLER: 'always_on' }, 'payment-gateway'),
    createLogger('silent'),
  );
  assert.equal(tracing.enabled, false);
  assert.equal(tracingOn(), false);

  const request = client(gateway.url);
  const user = await createUser(request, 'Untraced');
  const answer = await request('POST', '/api/v1/deposits', {
    key: user.api_key,
    body: { amount: 100, currency: 'USD' },
    idempotencyKey: crypto.randomUUID(),
    headers: { traceparent: `00-${'ab'.repeat(16)}-${'cd'.repeat(8)}-01` },
  });
  assert.equal(answer.status, 202, answer.text);
  assert.equal(answer.headers.get('traceparent'), null);
  await eventually(() => (bankCalls.length > 0 ? true : undefined));
  assert.deepEqual(
    bankCalls.filter((headers) => headers.traceparent !== undefined || headers.tracestate !== undefined),
    [],
  );
  await tracing.flush();
  await tracing.shutdown();
  assert.equal(sink.requests(), 0);
});
