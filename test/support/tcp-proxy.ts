import { once } from 'node:events';
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';

/**
 * A TCP proxy between a gateway and one of its dependencies, for fault injection: it can cut every
 * link (and refuse new ones), reset them (RST), or freeze them (nothing passes either way, the sockets
 * stay open, as with a link that silently drops packets), then restore normal service.
 */
export interface TcpProxy {
  /** Where clients connect instead of the dependency. */
  port: number;
  /** Links open now. */
  links(): number;
  /** Ends every link and refuses new ones until `restore()`. */
  cut(): void;
  /** Resets every link (RST); new links are accepted as usual. */
  reset(): void;
  /** Passes nothing either way, on open and new links, until `restore()`. */
  freeze(): void;
  /** Normal service: new links pass, frozen ones carry on where they stopped. */
  restore(): void;
  close(): Promise<void>;
}

interface Link {
  client: Socket;
  upstream: Socket;
  /** Bytes that arrived while frozen, in order, with the side they go to. */
  held: { to: Socket; chunk: Buffer }[];
}

/** Starts a proxy on a free loopback port to `target_port` on 127.0.0.1. */
export async function startTcpProxy(target_port: number): Promise<TcpProxy> {
  let mode: 'pass' | 'cut' | 'frozen' = 'pass';
  const links = new Set<Link>();

  // A frozen link passes nothing and stops reading, so that, once the kernel's buffers fill, its
  // sender stalls too: what a link that silently drops packets looks like from either end.
  const relay = (link: Link, from: Socket, to: Socket) =>
    from.on('data', (chunk: Buffer) => {
      if (mode !== 'frozen') return void to.write(chunk);
      link.held.push({ to, chunk });
      from.pause();
    });

  const server = createServer((client) => {
    if (mode === 'cut') {
      client.resetAndDestroy();
      return;
    }
    const upstream = connect(target_port, '127.0.0.1');
    const link: Link = { client, upstream, held: [] };
    links.add(link);
    const end = () => {
      links.delete(link);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    relay(link, client, upstream);
    relay(link, upstream, client);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');

  return {
    port: (server.address() as AddressInfo).port,
    links: () => links.size,
    cut() {
      mode = 'cut';
      for (const link of links) link.client.resetAndDestroy();
    },
    reset() {
      for (const link of links) link.client.resetAndDestroy();
    },
    freeze() {
      mode = 'frozen';
    },
    restore() {
      mode = 'pass';
      for (const link of links) {
        for (const { to, chunk } of link.held.splice(0)) to.write(chunk);
        link.client.resume();
        link.upstream.resume();
      }
    },
    async close() {
      mode = 'cut';
      for (const link of links) link.client.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
