import { once } from 'node:events';
import { readdirSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import { defaultReplSocket, loadEnvFile } from '../config.ts';

// The admin REPL: `npm run repl [-- <socket path>]`. Attaches to a running instance's local socket
// (operator/repl-server.ts), asks for the admin key (ADMIN_API_KEY, or typed without echo), then sends
// each line typed and prints the answer.

type Answer = { ok: true; output: string } | { ok: false; error: string };

function fail(message: string): never {
  console.error(message);
  process.exit(1);
}

/** The socket named on the command line or by REPL_SOCKET, INSTANCE_ID's, or the only one in the temp folder. */
function socketPath(): string {
  const given = process.argv[2] ?? process.env.REPL_SOCKET;
  if (given) return given;
  if (process.env.INSTANCE_ID) return defaultReplSocket(process.env.INSTANCE_ID);
  const found = readdirSync(tmpdir())
    .filter((name) => /^payment-gateway-.+\.sock$/.test(name))
    .map((name) => join(tmpdir(), name));
  if (found.length === 1) return found[0]!;
  if (found.length === 0) fail(`No gateway socket in ${tmpdir()}. Is one running? Name it: npm run repl -- <path>`);
  fail(`Several gateway sockets; name one: npm run repl -- <path>\n  ${found.join('\n  ')}`);
}

/** Sends a line and resolves with the answer, or undefined once the gateway has closed the connection. */
function requester(socket: Socket): (line: string) => Promise<Answer | undefined> {
  let buffered = '';
  let waiting: ((answer: Answer | undefined) => void) | undefined;
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    buffered += chunk;
    for (let newline = buffered.indexOf('\n'); newline >= 0; newline = buffered.indexOf('\n')) {
      const answer = JSON.parse(buffered.slice(0, newline)) as Answer;
      buffered = buffered.slice(newline + 1);
      waiting?.(answer);
      waiting = undefined;
    }
  });
  socket.on('close', () => waiting?.(undefined));
  socket.on('error', () => {});
  return (line) =>
    new Promise((resolve) => {
      if (socket.destroyed) return resolve(undefined);
      waiting = resolve;
      socket.write(`${line}\n`);
    });
}

// The `.env` the gateway read names its socket and admin key here too.
loadEnvFile();
const path = socketPath();
const socket = connect(path);
await once(socket, 'connect').catch((error: Error) => fail(`Cannot connect to ${path}: ${error.message}`));
const request = requester(socket);
let quitting = false;
socket.on('close', () => quitting || fail('The gateway closed the connection.'));

// A terminal echoes what is typed through readline's output: muting that output hides the key.
let muted = false;
const output = new Writable({
  write(chunk: Buffer, _encoding, callback) {
    if (!muted) process.stdout.write(chunk);
    callback();
  },
});
const terminal = process.stdin.isTTY === true;
const input = createInterface({ input: process.stdin, output, terminal });
const lines = input[Symbol.asyncIterator]();

async function ask(prompt: string, secret = false): Promise<string | undefined> {
  input.setPrompt(prompt);
  input.prompt();
  muted = secret;
  const next = await lines.next();
  muted = false;
  if (secret && terminal) process.stdout.write('\n');
  return next.done ? undefined : next.value;
}

async function authenticate(): Promise<void> {
  let key = process.env.ADMIN_API_KEY;
  for (;;) {
    key ??= await ask('admin key: ', true);
    if (key === undefined) fail('No admin key given.');
    const answer = await request(`auth ${key.trim()}`);
    if (!answer) fail('The gateway closed the connection.');
    if (answer.ok) return void console.log(answer.output);
    console.log(`refused: ${answer.error}`);
    key = undefined;
  }
}

await authenticate();
for (;;) {
  const line = (await ask('pgw> '))?.trim() ?? 'quit';
  if (line === '') continue;
  quitting = line === 'quit' || line === 'exit';
  const answer = await request(line);
  if (!answer) fail('The gateway closed the connection.');
  console.log(answer.ok ? answer.output : `error: ${answer.error}`);
  if (quitting) break;
}
input.close();
socket.end();
