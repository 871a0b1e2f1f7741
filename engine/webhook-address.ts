import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP, type LookupFunction } from 'node:net';

// Where a merchant's webhook may be sent (SSRF): a URL a user registers is fetched from inside our
// network, so in production only `https` to hosts whose every address is public. The check runs when the
// endpoint is registered and again when a connection is made, on the address the connection then uses
// (resolve, check, connect to that address), so a name that resolves elsewhere later (DNS rebinding)
// reaches nothing private.

/** A CIDR range that is not the public internet, with why. */
interface Range {
  bits: bigint;
  prefix: number;
  why: string;
}

const V4_RANGES: readonly [string, number, string][] = [
  ['0.0.0.0', 8, 'this network'],
  ['10.0.0.0', 8, 'private'],
  ['100.64.0.0', 10, 'carrier-grade NAT'],
  ['127.0.0.0', 8, 'loopback'],
  ['169.254.0.0', 16, 'link-local (cloud metadata)'],
  ['172.16.0.0', 12, 'private'],
  ['192.0.0.0', 24, 'IETF protocol assignments'],
  ['192.0.2.0', 24, 'documentation'],
  ['192.88.99.0', 24, '6to4 relay'],
  ['192.168.0.0', 16, 'private'],
  ['198.18.0.0', 15, 'benchmarking'],
  ['198.51.100.0', 24, 'documentation'],
  ['203.0.113.0', 24, 'documentation'],
  ['224.0.0.0', 4, 'multicast'],
  ['240.0.0.0', 4, 'reserved (broadcast included)'],
];

const V6_RANGES: readonly [string, number, string][] = [
  ['::', 128, 'unspecified'],
  ['::1', 128, 'loopback'],
  ['::', 96, 'IPv4-compatible'],
  ['100::', 64, 'discard'],
  ['2001::', 23, 'IETF protocol assignments'],
  ['2001:db8::', 32, 'documentation'],
  ['fc00::', 7, 'unique local'],
  ['fe80::', 10, 'link-local'],
  ['fec0::', 10, 'site-local'],
  ['ff00::', 8, 'multicast'],
];

/** IPv6 prefixes that carry an IPv4 address in their last 32 bits: judged by that address. */
const V6_EMBEDDING_V4: readonly [string, number][] = [
  ['::ffff:0:0', 96], // IPv4-mapped
  ['64:ff9b::', 96], // NAT64
  ['64:ff9b:1::', 48], // local-use NAT64
];

function v4Bits(address: string): bigint {
  return address.split('.').reduce((bits, part) => (bits << 8n) | BigInt(Number(part)), 0n);
}

/** The 128 bits of an IPv6 address (`::` and a dotted IPv4 tail allowed), as node's isIP accepts it. */
function v6Bits(address: string): bigint {
  let text = address.split('%')[0]!.toLowerCase();
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const v4 = v4Bits(dotted[1]!);
    text = `${text.slice(0, -dotted[1]!.length)}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups =
    tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return groups.reduce((bits, group) => (bits << 16n) | BigInt(parseInt(group, 16)), 0n);
}

const ranges = (list: readonly [string, number, string][], width: number, bits: (a: string) => bigint): Range[] =>
  list.map(([base, prefix, why]) => ({ bits: bits(base) >> BigInt(width - prefix), prefix, why }));

const V4 = ranges(V4_RANGES, 32, v4Bits);
const V6 = ranges(V6_RANGES, 128, v6Bits);
const V6_V4 = ranges(
  V6_EMBEDDING_V4.map(([base, prefix]) => [base, prefix, '']),
  128,
  v6Bits,
);

function within(bits: bigint, width: number, list: readonly Range[]): Range | undefined {
  return list.find((range) => bits >> BigInt(width - range.prefix) === range.bits);
}

/**
 * Why an IP address is not a public internet address (loopback, private, link-local and the metadata
 * address, CGNAT, multicast, reserved, IPv6 unique-local and link-local, and IPv4 addresses mapped or
 * translated into IPv6), or undefined when it is public.
 */
export function nonPublicReason(address: string): string | undefined {
  const family = isIP(address.split('%')[0]!);
  if (family === 4) return within(v4Bits(address), 32, V4)?.why;
  if (family !== 6) return 'not an IP address';
  const bits = v6Bits(address);
  if (within(bits, 128, V6_V4)) {
    const v4 = bits & 0xffffffffn;
    const why = within(v4, 32, V4)?.why;
    return why && `${why} (IPv4 inside IPv6)`;
  }
  return within(bits, 128, V6)?.why;
}

/** Resolves a host name to its addresses (DNS, or a test's table). */
export type Resolve = (hostname: string) => Promise<{ address: string; family: number }[]>;

export const systemResolve: Resolve = (hostname) => dnsLookup(hostname, { all: true, verbatim: true });

/** Thrown when a URL or the address it resolves to may not receive webhooks. */
export class WebhookAddressRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WebhookAddressRefused';
  }
}

export interface AddressPolicy {
  /** Allows `http` and non-public addresses (local development and tests). */
  allow_private: boolean;
  resolve: Resolve;
}

/** The URL's host without IPv6 brackets. */
function hostOf(url: URL): string {
  return url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
}

/** The addresses a host may be reached at, all of them checked; refused when any is not public. */
export async function checkedAddresses(hostname: string, policy: AddressPolicy) {
  const addresses = isIP(hostname) ? [{ address: hostname, family: isIP(hostname) }] : await policy.resolve(hostname);
  if (addresses.length === 0) throw new WebhookAddressRefused(`${hostname} does not resolve`);
  if (policy.allow_private) return addresses;
  for (const { address } of addresses) {
    const why = nonPublicReason(address);
    if (why) throw new WebhookAddressRefused(`${hostname} resolves to ${address}, which is ${why}`);
  }
  return addresses;
}

/**
 * Checks a URL a user registers: its scheme (`https`, or `http` too when private addresses are allowed),
 * no credentials in it, and every address its host resolves to now. Resolution failing is a refusal.
 */
export async function checkWebhookUrl(text: string, policy: AddressPolicy): Promise<void> {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new WebhookAddressRefused('is not a URL');
  }
  const schemes = policy.allow_private ? ['https:', 'http:'] : ['https:'];
  if (!schemes.includes(url.protocol)) throw new WebhookAddressRefused(`must be an ${schemes.join(' or ')} URL`);
  if (url.username || url.password) throw new WebhookAddressRefused('must not hold credentials');
  try {
    await checkedAddresses(hostOf(url), policy);
  } catch (error) {
    if (error instanceof WebhookAddressRefused) throw error;
    throw new WebhookAddressRefused(`${url.hostname} does not resolve`);
  }
}

/**
 * A `lookup` for node's sockets that resolves, checks every address, and hands the socket the address
 * it checked: the connection goes where the check looked, whatever the name resolves to a moment later.
 * (Node skips `lookup` for IP literals: `checkWebhookTarget` judges those.)
 */
export function guardedLookup(policy: AddressPolicy): LookupFunction {
  return (hostname, options, callback) => {
    checkedAddresses(hostname, policy).then(
      (addresses) => {
        const wanted = addresses.filter((entry) => !options.family || entry.family === options.family);
        const usable = wanted.length > 0 ? wanted : addresses;
        if (options.all) callback(null, usable);
        else callback(null, usable[0]!.address, usable[0]!.family);
      },
      (error: Error) => callback(Object.assign(error, { code: 'EWEBHOOKREFUSED' }), '', 0),
    );
  };
}

/** Refuses a delivery URL before any connection when its scheme or its literal IP address may not be used. */
export function checkWebhookTarget(url: URL, policy: AddressPolicy): void {
  if (url.protocol !== 'https:' && !(policy.allow_private && url.protocol === 'http:')) {
    throw new WebhookAddressRefused(`${url.protocol} URLs are not allowed`);
  }
  const host = hostOf(url);
  const why = isIP(host) && !policy.allow_private ? nonPublicReason(host) : undefined;
  if (why) throw new WebhookAddressRefused(`${host} is ${why}`);
}
