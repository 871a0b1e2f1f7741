import autocannon from 'autocannon';

// A deposit load against one running gateway, for profiling: npx tsx bench/load-deposits.ts <url> <seconds>
// (users pgw_bench_user_00000000 … 00000999, as bench/run.ts seeds them).
const [url = 'http://127.0.0.1:3000', seconds = '8'] = process.argv.slice(2);
const result = await autocannon({
  url,
  connections: 64,
  duration: Number(seconds),
  requests: [
    {
      method: 'POST',
      path: '/api/v1/deposits',
      setupRequest: (request) => ({
        ...request,
        headers: {
          'content-type': 'application/json',
          authorization: `Bearer pgw_bench_user_${String(Math.floor(Math.random() * 1000)).padStart(8, '0')}`,
          'idempotency-key': crypto.randomUUID(),
        },
        body: JSON.stringify({ amount: 1000, currency: 'USD' }),
      }),
    },
  ],
});
console.log(`${Math.round(result.requests.average)} req/s, p50 ${result.latency.p50} ms, p99 ${result.latency.p99} ms`);
