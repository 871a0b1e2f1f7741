import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { createHop, HopError } from '../hop.ts';
import {
  checkWebhookTarget,
  checkWebhookUrl,
  guardedLookup,
  nonPublicReason,
  WebhookAddressRefused,
  type AddressPolicy,
  type Resolve,
} from './webhook-address.ts';

// No test here lets a connection leave the machine: every name resolves through a table, and the only
// address ever connected to is 127.0.0.1.

const REFUSED: [string, RegExp][] = [
  ['0.0.0.0', /this network/],
  ['10.1.2.3', /private/],
  ['100.64.0.1', /carrier-grade NAT/],
  ['127.0.0.1', /loopback/],
  ['127.255.255.254', /loopback/],
  ['169.254.169.254', /link-local/],
  ['172.16.0.1', /private/],
  ['172.31.255.255', /private/],
  ['192.168.1.1', /private/],
  ['192.0.2.1', /documentation/],
  ['198.18.0.1', /benchmarking/],
  ['224.0.0.1', /multicast/],
  ['239.255.255.250', /multicast/],
  ['255.255.255.255', /reserved/],
  ['::', /unspecified/],
  ['::1', /loopback/],
  ['fc00::1', /unique local/],
  ['fd12:3456::1', /unique local/],
  ['fe80::1', /link-local/],
  ['fe80::1%eth0', /link-local/],
  ['ff02::1', /multicast/],
  ['2001:db8::1', /documentation/],
  ['::ffff:127.0.0.1', /loopback \(IPv4 inside IPv6\)/],
  ['::ffff:7f00:1', /loopback \(IPv4 inside IPv6\)/],
  ['::ffff:169.254.169.254', /link-local.*IPv4 inside IPv6/],
  ['::ffff:a00:1', /private/],
  ['64:ff9b::10.0.0.1', /private/],
  ['::127.0.0.1', /IPv4-compatible/],
];

const PUBLIC = ['93.184.216.34', '8.8.8.8', '172.32.0.1', '100.128.0.1', '2606:4700::1111', '::ffff:8.8.8.8'];

test('every non-public range is refused with its name; public addresses pass', () => {
  for (const [address, why] of REFUSED) assert.match(nonPublicReason(address) ?? 'public', why, address);
  for (const address of PUBLIC) assert.equal(nonPublicReason(address), undefined, address);
});

const table =
  (entries: Record<string, string[]>): Resolve =>
  (hostname) => {
    const addresses = entries[hostname];
    if (!addresses) return Promise.reject(new Error(`ENOTFOUND ${hostname}`));
    return Promise.resolve(addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 })));
  };

const production = (resolve: Resolve): AddressPolicy => ({ allow_private: false, resolve });

test('registration: https only, no credentials, and every address the name resolves to must be public', async () => {
  const policy = production(
    table({
      'shop.example': ['93.184.216.34'],
      'mixed.example': ['93.184.216.34', '10.0.0.7'],
      'meta.example': ['169.254.169.254'],
    }),
  );
  await checkWebhookUrl('https://shop.example/hooks', policy);
  const refusals: [string, RegExp][] = [
    ['http://shop.example/hooks', /must be an https: URL/],
    ['https://user:pw@shop.example/hooks', /credentials/],
    ['https://mixed.example/hooks', /10\.0\.0\.7, which is private/],
    ['https://meta.example/', /link-local/],
    ['https://127.0.0.1/', /loopback/],
    ['https://2130706433/', /loopback/], // 127.0.0.1 written as one number
    ['https://0x7f.1/', /loopback/],
    ['https://[::1]/', /loopback/],
    ['https://[::ffff:127.0.0.1]/', /loopback/],
    ['https://[fd00::1]/', /unique local/],
    ['https://nowhere.example/', /does not resolve/],
    ['not a url', /not a URL/],
  ];
  for (const [url, why] of refusals) {
    await assert.rejects(checkWebhookUrl(url, policy), (error: Error) => {
      assert.ok(error instanceof WebhookAddressRefused, url);
      assert.match(error.message, why, url);
      return true;
    });
  }
  // Local use: http and loopback allowed.
  await checkWebhookUrl('http://127.0.0.1:3000/hooks', { allow_private: true, resolve: policy.resolve });
});

test('a literal address is judged before any connection; a name when it is resolved to connect', () => {
  const policy = production(table({}));
  assert.throws(() => checkWebhookTarget(new URL('https://169.254.169.254/latest'), policy), /link-local/);
  assert.throws(() => checkWebhookTarget(new URL('http://shop.example/'), policy), /http: URLs are not allowed/);
  checkWebhookTarget(new URL('https://shop.example/'), policy);
});

test('connecting checks the address the socket then uses: a name that rebinds to loopback reaches nothing', async () => {
  let requests = 0;
  const server = createServer((_, response) => {
    requests += 1;
    response.end('ok');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  // Public when the endpoint was registered, loopback at delivery time: DNS rebinding.
  let answers = 0;
  const rebinding: Resolve = () =>
    Promise.resolve([{ address: answers++ === 0 ? '93.184.216.34' : '127.0.0.1', family: 4 }]);
  const policy = production(rebinding);
  await checkWebhookUrl(`https://rebind.example:${port}/hooks`, policy);
  const guarded = createHop({ sockets_max: 2, timeout_ms: 2000, lookup: guardedLookup(policy) });
  try {
    await assert.rejects(
      guarded.request(`http://rebind.example:${port}`, '/hooks', { method: 'POST', body: '{}' }),
      (error) => {
        assert.ok(error instanceof HopError);
        assert.equal(error.failure, 'connect');
        assert.match(error.message, /127\.0\.0\.1, which is loopback/);
        return true;
      },
    );
    assert.equal(requests, 0);

    // Allowed (local use), the connection goes to the address the lookup returned, not to a fresh
    // resolution: the name exists only in the table, and the request still arrives.
    const local = createHop({
      sockets_max: 2,
      timeout_ms: 2000,
      lookup: guardedLookup({ allow_private: true, resolve: table({ 'hooks.test': ['127.0.0.1'] }) }),
    });
    const answer = await local.request(`http://hooks.test:${port}`, '/hooks', { method: 'POST', body: '{}' });
    local.close();
    assert.equal(answer.status, 200);
    assert.equal(requests, 1);
  } finally {
    guarded.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});
