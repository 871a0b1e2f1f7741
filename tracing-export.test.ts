import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { loadTracingConfig } from './config.ts';
import { createLogger } from './logger.ts';
import { endSpan, startSpan, tracingOn } from './tracing.ts';
import { samplerOf, startTracing, tracesUrl } from './tracing-export.ts';
import { captureLines } from './test/support/log-capture.ts';

test('traces go to the traces endpoint as given, else to <base>/v1/traces; neither set is off', () => {
  const config = (env: Record<string, string>) => loadTracingConfig(env, 'payment-gateway');
  assert.equal(tracesUrl(config({})), undefined);
  assert.equal(
    tracesUrl(config({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://jaeger:4318/' })),
    'http://jaeger:4318/v1/traces',
  );
  assert.equal(
    tracesUrl(
      config({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:4318', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://b:9/traces' }),
    ),
    'http://b:9/traces',
  );
  assert.equal(config({}).OTEL_SERVICE_NAME, 'payment-gateway');
  assert.equal(loadTracingConfig({}, 'bank-simulator').OTEL_SERVICE_NAME, 'bank-simulator');
  assert.equal(loadTracingConfig({ OTEL_SERVICE_NAME: 'bank-2' }, 'bank-simulator').OTEL_SERVICE_NAME, 'bank-2');
  assert.throws(() => config({ OTEL_TRACES_SAMPLER: 'sometimes' }), /OTEL_TRACES_SAMPLER/);
  assert.throws(() => config({ OTEL_TRACES_SAMPLER_ARG: '2' }), /OTEL_TRACES_SAMPLER_ARG/);
});

test('the sampler is the one OTEL_TRACES_SAMPLER names, with its ratio', () => {
  const sampler = (env: Record<string, string>) => samplerOf(loadTracingConfig(env, 'x')).toString();
  assert.match(sampler({}), /ParentBased\{root=AlwaysOnSampler/);
  assert.equal(sampler({ OTEL_TRACES_SAMPLER: 'always_off' }), 'AlwaysOffSampler');
  assert.equal(
    sampler({ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.25' }),
    'TraceIdRatioBased{0.25}',
  );
  assert.match(
    sampler({ OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.5' }),
    /root=TraceIdRatioBased\{0.5\}/,
  );
});

test('an export that fails never throws: one warning, and the next failures are counted, not logged', async () => {
  // A collector that refuses every export (400: the exporter does not retry it).
  const collector = createServer((request, response) => {
    request.resume();
    request.on('end', () => response.writeHead(400).end());
  }).listen(0, '127.0.0.1');
  await once(collector, 'listening');
  const { port } = collector.address() as AddressInfo;

  const logs = captureLines();
  const tracing = startTracing(
    loadTracingConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}` }, 'payment-gateway'),
    createLogger('info', logs.stream, 'json'),
  );
  try {
    assert.equal(tracingOn(), true);
    for (let i = 0; i < 3; i++) {
      endSpan(startSpan('lost', {}));
      await tracing.flush();
    }
  } finally {
    await tracing.shutdown();
    collector.close();
  }
  assert.equal(tracingOn(), false);
  const warnings = logs.lines().filter((line) => line.level === 'warn');
  assert.equal(warnings.length, 1, JSON.stringify(warnings));
  assert.equal(warnings[0]!.msg, 'trace export failed; spans dropped');
  assert.equal(warnings[0]!.module, 'tracing');
});
