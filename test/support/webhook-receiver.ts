import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request a merchant's endpoint received. */
export interface Received {
  headers: IncomingHttpHeaders;
  body: string;
  json: { id: string; type: string; created_at: string; data: Record<string, unknown> };
  at: number;
}

/**
 * How the receiver answers one request: a status, or `hold` (keep the request open until `release`),
 * decided per request so that a test can fail, recover, stall or slow the endpoint.
 */
export type Behaviour = (received: Received, index: number) => number | 'hold' | Promise<number>;

/** A merchant's HTTP endpoint in the test process, recording every request it gets. */
export async function startReceiver(behaviour: Behaviour = () => 200) {
  const received: Received[] = [];
  const held: ServerResponse[] = [];
  let answer = behaviour;
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const entry: Received = {
        headers: request.headers,
        body,
        json: JSON.parse(body) as Received['json'],
        at: Date.now(),
      };
      received.push(entry);
      void Promise.resolve(answer(entry, received.length - 1)).then((status) => {
        if (status === 'hold') held.push(response);
        else response.writeHead(status).end();
      });
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hooks`,
    port,
    received,
    /** Changes how later requests are answered. */
    answerWith(next: Behaviour) {
      answer = next;
    },
    /** Destroys every held request's connection (the sender sees a reset or its own timeout first). */
    release() {
      for (const response of held.splice(0)) response.destroy();
    },
    async close() {
      for (const response of held.splice(0)) response.destroy();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
