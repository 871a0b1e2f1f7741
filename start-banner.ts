import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import type { Logger } from './logger.ts';

/** Where a started gateway can be reached: what `npm start` tells the person who ran it. */
export interface StartAddresses {
  api: string;
  viewer: string;
  admin: string;
  docs: string;
  /** The task dashboard, when this instance serves one. */
  dashboard?: string;
  repl_socket: string;
  /** The command that attaches the admin REPL to this instance's socket. */
  repl: string;
}

/**
 * The host to put in a URL for a listener bound to `host`: `localhost` for every interface (the person
 * reading it is on this machine), the address itself otherwise (an IPv6 literal in brackets).
 */
function urlHost(host: string): string {
  if (host === '0.0.0.0' || host === '::') return 'localhost';
  return host.includes(':') ? `[${host}]` : host;
}

/** A path as a shell reads it: quoted when it holds anything but plain path characters. */
function shellWord(path: string): string {
  return /^[\w./-]+$/.test(path) ? path : `'${path.replaceAll("'", `'\\''`)}'`;
}

/**
 * The addresses of a started gateway, from the ports its servers are bound to (PORT=0 or
 * DASHBOARD_PORT=0 pick a free port: the one picked is shown).
 */
export function startAddresses(parts: {
  server: Server;
  host: string;
  dashboardUrl?: string;
  dashboardHost: string;
  replSocket: string;
}): StartAddresses {
  const { port } = parts.server.address() as AddressInfo;
  const base = `http://${urlHost(parts.host)}:${port}`;
  const dashboard = parts.dashboardUrl
    ? `http://${urlHost(parts.dashboardHost)}:${new URL(parts.dashboardUrl).port}/`
    : undefined;
  return {
    api: `${base}/api/v1`,
    viewer: `${base}/`,
    admin: `${base}/admin`,
    docs: `${base}/docs`,
    ...(dashboard ? { dashboard } : {}),
    repl_socket: parts.replSocket,
    repl: `npm run repl -- ${shellWord(parts.replSocket)}`,
  };
}

/** The banner's lines: one per place to go, named for a person, aligned. */
export function bannerLines(addresses: StartAddresses): string[] {
  const rows: [string, string][] = [
    ['API', addresses.api],
    ['Transaction viewer', addresses.viewer],
    ['Admin panel', addresses.admin],
    ['API docs', addresses.docs],
    ...(addresses.dashboard ? [['Task dashboard', addresses.dashboard] as [string, string]] : []),
    ['Admin REPL', `${addresses.repl}   (socket ${addresses.repl_socket})`],
  ];
  const width = Math.max(...rows.map(([name]) => name.length));
  return ['Payment gateway ready:', ...rows.map(([name, where]) => `  ${name.padEnd(width)}  ${where}`)];
}

/**
 * Tells where the gateway is once it listens: plain lines on a terminal, for the person who ran
 * `npm start`; one `info` line with the addresses as fields otherwise, so that a JSON log stays JSON.
 */
export function announceStart(
  addresses: StartAddresses,
  output: { terminal: boolean; write: (text: string) => void; log: Logger },
): void {
  if (output.terminal) output.write(`\n${bannerLines(addresses).join('\n')}\n\n`);
  else output.log.info({ ...addresses }, 'gateway ready');
}
