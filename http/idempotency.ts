import { createHash } from 'node:crypto';
import type { Context } from 'koa';
import type { ActorReply } from '../engine/account-actor.ts';
import { outcomeFromStored, type KeptOutcome } from '../engine/account-codec.ts';
import {
  IdempotencyLookupsFull,
  keySlot,
  type IdempotencyRecord,
  type IdempotencyStore,
} from '../persistence/idempotency.ts';
import { errors, refusalError } from './errors.ts';

/** A response as it goes on the wire, so that a replay can repeat it byte for byte. */
export interface StoredResponse {
  status: number;
  body: string;
}

const KEY_LENGTH_MAX = 255;

/** The Idempotency-Key header: 400 when it is missing, empty or longer than 255 characters. */
export function idempotencyKey(ctx: Context): string {
  const raw = ctx.req.headers['idempotency-key'];
  if (raw === undefined) throw errors.idempotencyKeyRequired();
  const key = Array.isArray(raw) ? '' : raw.trim();
  if (key.length === 0 || key.length > KEY_LENGTH_MAX || !/^[\x21-\x7e]+$/.test(key)) {
    throw errors.idempotencyKeyInvalid({ length_max: KEY_LENGTH_MAX });
  }
  return key;
}

/** JSON with object keys sorted, so that two spellings of one body have one fingerprint. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** The request's fingerprint: method + path + canonical body. */
export function fingerprint(method: string, path: string, body: unknown): string {
  return createHash('sha256')
    .update(`${method} ${path}\n${canonicalJson(body)}`)
    .digest('base64url');
}

/** Writes a response as stored, marking it when it is a replay. */
export function sendStored(ctx: Context, response: StoredResponse, replayed: boolean): void {
  ctx.status = response.status;
  ctx.type = 'application/json';
  ctx.body = response.body;
  if (replayed) ctx.set('Idempotent-Replayed', 'true');
}

/** A response, and whether it repeats a stored one (the `Idempotent-Replayed` header). */
export interface Answer {
  response: StoredResponse;
  replayed: boolean;
}

export interface Attempt {
  caller: string;
  key: string;
  fingerprint: string;
}

/**
 * How a route answers an account command's outcome: the same function renders the first answer and
 * every replay of its key, so that a replay repeats the first answer byte for byte.
 */
export type RenderOutcome = (kept: KeptOutcome) => StoredResponse;

/** A route whose records are all responses as sent: it has no outcome to render. */
const RESPONSES_ONLY: RenderOutcome = () => {
  throw new Error('an idempotency record holds an outcome where this route stores responses');
};

/** The response a record answers with. */
function answerOf(record: IdempotencyRecord, render: RenderOutcome): StoredResponse {
  const { answer } = record;
  if ('outcome' in answer) return render(outcomeFromStored(answer.outcome));
  return { status: answer.status_code, body: answer.body };
}

/**
 * Runs a POST at most once per (caller, key). A request that finds the first one still running
 * waits for it (bounded) and then replays its answer; one that waited too long gets 409.
 * The handler itself must store the record in the same commit as its effects.
 */
export function createIdempotencyGate(store: IdempotencyStore, waitMs: number) {
  const inFlight = new Map<string, Promise<unknown>>();

  /** The record, if any; 503 when too many lookups already wait for Postgres (nothing was run). */
  async function find(attempt: Attempt) {
    try {
      return await store.find(attempt.caller, attempt.key);
    } catch (error) {
      if (error instanceof IdempotencyLookupsFull) throw errors.storageUnavailable();
      throw error;
    }
  }

  async function replayOrNothing(attempt: Attempt, render: RenderOutcome): Promise<StoredResponse | undefined> {
    const record = await find(attempt);
    if (!record) return undefined;
    if (record.fingerprint !== attempt.fingerprint) throw errors.idempotencyKeyReused();
    return answerOf(record, render);
  }

  async function waitFor(running: Promise<unknown>): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), waitMs)));
    const done = running.then(
      () => true,
      () => true,
    );
    return Promise.race([done, timeout]).finally(() => clearTimeout(timer));
  }

  return {
    inFlightCount: () => inFlight.size,

    /** Stores the answer of a handler that commits nothing else (the actor stores its own). */
    async record(attempt: Attempt, response: StoredResponse, user_id: string | null): Promise<void> {
      await store.insert({ ...attempt, user_id, answer: { status_code: response.status, body: response.body } });
    },

    /**
     * The answer to an account command's reply: its outcome rendered; or, when the actor found the key
     * taken meanwhile (by a request of its batch, or on another instance), the stored answer as a
     * replay. Any other refusal is thrown as its error.
     */
    async answer(
      attempt: Attempt,
      reply: ActorReply,
      render: RenderOutcome,
      kept: Omit<KeptOutcome, 'outcome'>,
    ): Promise<Answer> {
      if (reply.kind === 'done') return { response: render({ ...kept, outcome: reply.outcome }), replayed: false };
      if (reply.kind === 'refused' && reply.reason === 'idempotency_conflict') {
        const stored = await replayOrNothing(attempt, render);
        if (stored) return { response: stored, replayed: true };
      }
      throw refusalError(reply.kind === 'refused' ? reply.reason : 'failed');
    },

    /**
     * Replays a stored answer, or runs `handler` once and returns what it produced; `render` answers a
     * record that holds an account command's outcome.
     */
    async run(
      attempt: Attempt,
      handler: () => Promise<Answer>,
      render: RenderOutcome = RESPONSES_ONLY,
    ): Promise<Answer> {
      const slot = keySlot(attempt.caller, attempt.key);
      const running = inFlight.get(slot);
      if (running) {
        const finished = await waitFor(running);
        const stored = finished ? await replayOrNothing(attempt, render) : undefined;
        if (stored) return { response: stored, replayed: true };
        throw errors.idempotencyKeyInUse();
      }
      const work = (async () => {
        const stored = await replayOrNothing(attempt, render);
        if (stored) return { response: stored, replayed: true };
        return handler();
      })();
      inFlight.set(slot, work);
      try {
        return await work;
      } finally {
        inFlight.delete(slot);
      }
    },
  };
}

export type IdempotencyGate = ReturnType<typeof createIdempotencyGate>;
