import { timingSafeEqual } from 'node:crypto';
import { once } from 'node:events';
import { chmod, lstat, rm } from 'node:fs/promises';
import { connect, createServer, type Socket } from 'node:net';
import type { Logger } from '../logger.ts';
import { hashApiKey } from '../http/auth.ts';
import type { ReplAnswer, ReplCommands } from './repl-commands.ts';

export interface ReplServerOptions {
  socket_path: string;
  admin_key: string;
  instance: string;
  commands: Pick<ReplCommands, 'run'>;
  log: Logger;
}

const LINE_CHARS_MAX = 4096;
const CONNECTIONS_MAX = 4;
const IDLE_MS = 30 * 60_000;
const AUTH_ATTEMPTS_MAX = 3;
const AUTH_FAILURE_DELAY_MS = 300;

/**
 * The admin REPL's server end, on a local UNIX socket (mode 0600, never a TCP port). The protocol is
 * a line per request and a line of JSON per answer (`{"ok":true,"output":…}` or `{"ok":false,"error":…}`);
 * a connection must first send `auth <admin key>`, and everything else is refused until the key
 * matches. `cli/repl.ts` is the client for people; `nc -U` works too.
 */
export async function startReplServer(options: ReplServerOptions): Promise<{ path: string; close(): Promise<void> }> {
  await removeStaleSocket(options.socket_path);
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    serve(socket, options);
  });
  server.maxConnections = CONNECTIONS_MAX;
  // The socket file is created by listen() itself, synchronously: the umask makes it 0600 from the
  // start rather than for the moment between listen and chmod.
  const umask = process.umask(0o177);
  try {
    server.listen(options.socket_path);
  } finally {
    process.umask(umask);
  }
  await once(server, 'listening');
  await chmod(options.socket_path, 0o600);
  options.log.info({ socket: options.socket_path }, 'admin repl listening');

  return {
    path: options.socket_path,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await closed;
      await rm(options.socket_path, { force: true });
    },
  };
}

/** One connection: lines in, one answer each, in order; the next line is read once the answer is out. */
function serve(socket: Socket, options: ReplServerOptions): void {
  const log = options.log.child({ repl: true });
  const adminHash = hashApiKey(options.admin_key);
  let authenticated = false;
  let failures = 0;
  let buffered = '';
  let working = false;

  const reply = (answer: ReplAnswer) => void socket.write(`${JSON.stringify(answer)}\n`);
  socket.setEncoding('utf8');
  socket.setTimeout(IDLE_MS, () => socket.end());
  socket.on('error', (error) => log.debug({ err: error }, 'repl connection failed'));
  socket.on('data', (chunk: string) => {
    buffered += chunk;
    void drain();
  });

  async function drain(): Promise<void> {
    if (working) return;
    working = true;
    socket.pause();
    for (;;) {
      const newline = buffered.indexOf('\n');
      if ((newline >= 0 ? newline : buffered.length) > LINE_CHARS_MAX) {
        socket.end(`${JSON.stringify({ ok: false, error: `a line may be at most ${LINE_CHARS_MAX} characters` })}\n`);
        return;
      }
      if (newline < 0) break;
      const line = buffered.slice(0, newline).replace(/\r$/, '');
      buffered = buffered.slice(newline + 1);
      await handle(line);
      if (socket.writableEnded) return;
    }
    working = false;
    socket.resume();
  }

  async function handle(line: string): Promise<void> {
    const [name = '', ...rest] = line.trim().split(/\s+/);
    if (!authenticated) return authenticate(name, rest.join(' '));
    if (name === '') return;
    if (name === 'quit' || name === 'exit') {
      reply({ ok: true, output: 'bye' });
      socket.end();
      return;
    }
    log.info({ command: line.trim() }, 'repl command');
    try {
      reply(await options.commands.run(line));
    } catch (error) {
      log.warn({ err: error, command: line.trim() }, 'repl command failed');
      reply({ ok: false, error: `failed: ${error instanceof Error ? error.message : String(error)}` });
    }
  }

  async function authenticate(name: string, key: string): Promise<void> {
    if (name !== 'auth') return reply({ ok: false, error: 'send "auth <admin key>" first' });
    // Hashing both sides gives equal lengths, so the comparison takes the same time whatever was sent.
    if (timingSafeEqual(hashApiKey(key), adminHash)) {
      authenticated = true;
      log.info('repl session opened');
      return reply({ ok: true, output: `connected to ${options.instance}; type help` });
    }
    failures += 1;
    log.warn({ failures }, 'repl refused a wrong admin key');
    await new Promise((resolve) => setTimeout(resolve, AUTH_FAILURE_DELAY_MS));
    reply({ ok: false, error: 'wrong admin key' });
    if (failures >= AUTH_ATTEMPTS_MAX) socket.end();
  }
}

/** Removes a socket file a crashed instance left behind; refuses to touch anything else, or a live socket. */
async function removeStaleSocket(path: string): Promise<void> {
  const found = await lstat(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  });
  if (!found) return;
  if (!found.isSocket()) throw new Error(`${path} exists and is not a socket: set REPL_SOCKET to another path`);
  const live = await new Promise<boolean>((resolve) => {
    const probe = connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (live) throw new Error(`another process listens on ${path}: is an instance with this INSTANCE_ID running?`);
  await rm(path, { force: true });
}
