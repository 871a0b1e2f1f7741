import { inspect } from 'node:util';
import { pino, type Logger } from 'pino';
import { prettyFactory } from 'pino-pretty';
import { isStorageFault } from './persistence/faults.ts';

/** Paths never written to a log line, whatever module logs them. */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers["webhook-signature"]',
  'headers.authorization',
  'authorization',
  'api_key',
  '*.api_key',
  'apiKey',
  '*.apiKey',
  'secret',
  '*.secret',
  'secrets',
  '*.secrets',
  'signature',
  '*.signature',
];

/** How a process writes its log: one JSON object a line (for machines), or readable lines (for people). */
export type LogFormat = 'json' | 'pretty';

/** LOG_FORMAT when it is set; otherwise readable lines when a person watches (stdout is a terminal), JSON when not. */
export function logFormat(forced: LogFormat | undefined, stdoutIsTerminal: boolean): LogFormat {
  return forced ?? (stdoutIsTerminal ? 'pretty' : 'json');
}

/** An error as a log line carries it: what it is and why, not the dozens of fields a DOMException or undici error holds. */
export interface LoggedError {
  type: string;
  message: string;
  code?: string;
  cause?: LoggedError | string;
  /** Only for an unexpected error (a bug): where it happened. */
  stack?: string;
}

// Errors that are operating conditions rather than bugs: an answer the code chose (ApiError), a timeout or
// an abort (DOMException names), a hop to another process that got no answer, and whatever means a
// dependency is unreachable (persistence/faults.ts: refused or reset connections, Postgres shutting
// down, ioredis giving up). An error caused by one of these is one too.
const EXPECTED_NAMES = new Set(['ApiError', 'TimeoutError', 'AbortError', 'HopError']);
/** How deep a chain of causes is followed (a cycle ends there too); the last one logged is its message. */
const CAUSES_MAX = 3;

function isExpected(error: Error, depth = 0): boolean {
  if (EXPECTED_NAMES.has(error.name) || isStorageFault(error)) return true;
  const { cause } = error as { cause?: unknown };
  return depth < CAUSES_MAX && cause instanceof Error && isExpected(cause, depth + 1);
}

function compact(error: Error, depth: number): LoggedError {
  const { code, cause, errors } = error as { code?: unknown; cause?: unknown; errors?: unknown };
  // Node's AggregateError of a failed connection (one error per address tried) has no message of its own.
  const inner = Array.isArray(errors) ? errors.filter((item): item is Error => item instanceof Error) : [];
  const logged: LoggedError = {
    type: error.name || error.constructor.name,
    message: error.message || inner.map((item) => item.message).join('; '),
  };
  if (typeof code === 'string') logged.code = code;
  if (cause instanceof Error) logged.cause = depth < CAUSES_MAX ? compact(cause, depth + 1) : cause.message;
  else if (cause !== undefined)
    logged.cause = typeof cause === 'string' ? cause : inspect(cause, { breakLength: Infinity });
  if (!isExpected(error) && error.stack) logged.stack = error.stack;
  return logged;
}

/**
 * pino's serializer for `err` and `error`: `{ type, message, code?, cause? }`, and a stack only when the
 * error is unexpected, so that a bank's timeout is one short line and a bug still says where it is.
 * Anything that is not an Error (a message already, a value) is logged as it is.
 */
export function compactError(value: unknown): unknown {
  return value instanceof Error ? compact(value, 1) : value;
}

// pino's isoTime formats a Date for every line; under load many lines share a millisecond, so the
// formatted field is kept until the clock moves on. The output is the same.
let stampedAtMs = Number.NaN;
let stamp = '';
function isoTime(): string {
  const now = Date.now();
  if (now !== stampedAtMs) {
    stampedAtMs = now;
    stamp = `,"time":"${new Date(now).toISOString()}"`;
  }
  return stamp;
}

/** An error in a few words, as the readable format puts it after the message: `TimeoutError: …`, causes after `←`. */
function errorSummary(error: unknown): string {
  if (typeof error !== 'object' || error === null) return String(error);
  const { type, code, message, cause } = error as Partial<LoggedError>;
  const head = `${type ?? 'Error'}${code ? ` ${code}` : ''}: ${message ?? ''}`;
  return cause === undefined ? head : `${head} ← ${errorSummary(cause)}`;
}

/**
 * Readable lines for a terminal: the local time, the level, the module and the message with the error in
 * a few words, then the other fields on the same line; an unexpected error's stack follows, indented. It
 * formats each JSON line as pino writes it, in the same call, so that nothing written before
 * `process.exit` is lost.
 */
function prettyDestination(destination: pino.DestinationStream, colorize: boolean): pino.DestinationStream {
  const format = prettyFactory({
    colorize,
    singleLine: true,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname,module',
    // Only `err` holds an Error (`error` is a reason in words, e.g. a bank call's): its stack, when it has one.
    errorLikeObjectKeys: ['err'],
    // No stack (an expected error): pino-pretty leaves the field out when its prettifier gives undefined.
    customPrettifiers: { err: (err) => (err as Partial<LoggedError>).stack as string },
    messageFormat: (line, messageKey) => {
      const { module, err, [messageKey]: message } = line;
      const prefix = typeof module === 'string' ? `${module}: ` : '';
      return `${prefix}${typeof message === 'string' ? message : ''}${err === undefined ? '' : ` (${errorSummary(err)})`}`;
    },
  });
  return { write: (line: string) => destination.write(format(line)) };
}

/**
 * The one root logger of a process; modules take `child({ module })` of it. It writes to `destination`
 * (stdout when absent) in `format`: JSON by default, readable lines with `pretty` (coloured on a terminal).
 */
export function createLogger(level: string, destination?: pino.DestinationStream, format: LogFormat = 'json'): Logger {
  const options: pino.LoggerOptions = {
    level,
    base: { pid: process.pid },
    timestamp: isoTime,
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    formatters: { level: (label) => ({ level: label }) },
    serializers: { err: compactError, error: compactError },
  };
  if (format === 'json') return pino(options, destination);
  // Colours only on a terminal that shows them (hasColors heeds NO_COLOR, FORCE_COLOR and TERM).
  if (destination) return pino(options, prettyDestination(destination, false));
  const colors = process.stdout.isTTY && process.stdout.hasColors();
  return pino(options, prettyDestination(pino.destination({ dest: 1, sync: true }), colors));
}

export type { Logger };
