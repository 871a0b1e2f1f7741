import { createHash, randomBytes } from 'node:crypto';

export type Direction = 'credit' | 'debit';
export type FailureCode = 'declined' | 'insufficient_funds';

/**
 * How the bank answers one HTTP attempt. `accepted_without_answer` records the transfer and then never
 * answers (the answer is lost after the bank applied it); `no_answer` never answers and records nothing.
 */
export type Answer = 'accepted' | 'accepted_without_answer' | 'no_answer' | 'unavailable' | 'invalid';

export type Outcome =
  { status: 'succeeded' } | { status: 'failed'; failure_code: FailureCode; failure_message: string };

/** What happens to an accepted transfer: its result, how many callbacks carry it, and when it settles. */
export interface Settlement {
  outcome: Outcome;
  callbacks: number;
  delay_ms: number;
}

export type Admission =
  | { scenario: string; answer: 'no_answer' | 'unavailable' | 'invalid' }
  | { scenario: string; answer: 'accepted' | 'accepted_without_answer'; settlement: Settlement };

/**
 * Each rate is a probability in [0, 1]. `timeout`, `unavailable` and `invalid` are drawn per attempt and
 * record nothing, so a retry draws again. An accepted transfer succeeds with `success`; otherwise a debit
 * fails `insufficient_funds` with `insufficient_funds` (taken from what `success` leaves) and anything
 * left over is `declined`. `duplicate_callback` sends the result three times, `lost_callback` never.
 */
export interface Rates {
  success: number;
  timeout: number;
  unavailable: number;
  invalid: number;
  insufficient_funds: number;
  duplicate_callback: number;
  lost_callback: number;
}

/** The rates used where none is configured; the success rate is the gateway's BANK_SUCCESS_RATE default. */
/**
 * The defaults the gateway shares with its bank (config.ts reads them from here), so that a fresh
 * machine signs and verifies callbacks with the same local secret and the same delays.
 */
export const BANK_DEFAULTS = Object.freeze({
  /** A local development secret: set WEBHOOK_SECRETS in any real deployment. */
  webhook_secret: 'whsec_bG9jYWwtZGV2LXdlYmhvb2stc2VjcmV0LWNoYW5nZS1tZQ==',
  delay_ms_min: 2000,
  delay_ms_max: 10_000,
});

export const DEFAULT_RATES: Readonly<Rates> = Object.freeze({
  success: 0.9,
  timeout: 0.01,
  unavailable: 0.02,
  invalid: 0.005,
  insufficient_funds: 0.05,
  duplicate_callback: 0.01,
  lost_callback: 0.01,
});

/** The failure_message the bank sends with each failure_code. */
export const FAILURE_MESSAGES: Readonly<Record<FailureCode, string>> = Object.freeze({
  declined: 'The bank declined the transfer.',
  insufficient_funds: 'The account does not hold enough funds for this debit.',
});

/** An amount that forces a scenario, like a payment provider's test card. */
export interface MagicAmount {
  amount: bigint;
  scenario: string;
  description: string;
  /** When set, only transfers in this direction are forced; the other direction is drawn as usual. */
  direction?: Direction;
  first_answer: Answer;
  later_answer: Answer;
  failure_code?: FailureCode;
  callbacks: number;
}

/** The documented magic amounts, in minor units (66_666n is 666.66 in a two-decimal currency). */
export const MAGIC_AMOUNTS: readonly MagicAmount[] = Object.freeze([
  {
    amount: 424_24n,
    scenario: 'success',
    description: 'Accepted (202), succeeds after the delay, one transfer.succeeded callback.',
    first_answer: 'accepted',
    later_answer: 'accepted',
    callbacks: 1,
  },
  {
    amount: 666_66n,
    scenario: 'declined',
    description: 'Accepted (202), then fails: one transfer.failed callback with failure_code "declined".',
    first_answer: 'accepted',
    later_answer: 'accepted',
    failure_code: 'declined',
    callbacks: 1,
  },
  {
    amount: 402_02n,
    scenario: 'insufficient_funds',
    description: 'Debit only: accepted (202), then transfer.failed with failure_code "insufficient_funds".',
    direction: 'debit',
    first_answer: 'accepted',
    later_answer: 'accepted',
    failure_code: 'insufficient_funds',
    callbacks: 1,
  },
  {
    amount: 400_00n,
    scenario: 'invalid_request',
    description: 'Refused with 400 invalid_request on every attempt (permanent); nothing is recorded.',
    first_answer: 'invalid',
    later_answer: 'invalid',
    callbacks: 0,
  },
  {
    amount: 503_03n,
    scenario: 'unavailable',
    description: 'Answered 503 on every attempt for the reference; nothing is recorded.',
    first_answer: 'unavailable',
    later_answer: 'unavailable',
    callbacks: 0,
  },
  {
    amount: 503_01n,
    scenario: 'unavailable_once',
    description: 'Answered 503 on the first attempt for the reference; the retry is accepted and succeeds.',
    first_answer: 'unavailable',
    later_answer: 'accepted',
    callbacks: 1,
  },
  {
    amount: 408_01n,
    scenario: 'timeout_before_apply',
    description: 'First attempt held without an answer and not recorded; the retry is accepted and succeeds.',
    first_answer: 'no_answer',
    later_answer: 'accepted',
    callbacks: 1,
  },
  {
    amount: 408_08n,
    scenario: 'timeout_after_apply',
    description:
      'First attempt recorded (the transfer succeeds and calls back) but held without an answer; a retry with the same reference gets the same bank_reference.',
    first_answer: 'accepted_without_answer',
    later_answer: 'accepted',
    callbacks: 1,
  },
  {
    amount: 777_77n,
    scenario: 'duplicate_callback',
    description: 'Accepted, succeeds; the callback is delivered three times with the same webhook-id.',
    first_answer: 'accepted',
    later_answer: 'accepted',
    callbacks: 3,
  },
  {
    amount: 999_99n,
    scenario: 'no_callback',
    description: 'Accepted, succeeds, but no callback is ever sent: only GET /bank/v1/transfers/{reference} tells.',
    first_answer: 'accepted',
    later_answer: 'accepted',
    callbacks: 0,
  },
]);

/** A PRNG (sfc32) seeded from a string through SHA-256: the same seed gives the same sequence in [0, 1). */
export function createRandom(seed: string): () => number {
  const digest = createHash('sha256').update(seed).digest();
  let a = digest.readUInt32LE(0);
  let b = digest.readUInt32LE(4);
  let c = digest.readUInt32LE(8);
  let d = digest.readUInt32LE(12);
  return () => {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return (t >>> 0) / 4_294_967_296;
  };
}

/** Throws when the rates or the delay bounds cannot describe a distribution: a programmer error. */
export function assertScenarioOptions(rates: Rates, delay_ms_min: number, delay_ms_max: number): void {
  for (const [name, rate] of Object.entries(rates)) {
    if (!(rate >= 0 && rate <= 1)) throw new RangeError(`rate ${name} must be within [0, 1], got ${rate}`);
  }
  if (rates.timeout + rates.unavailable + rates.invalid > 1) {
    throw new RangeError('the timeout, unavailable and invalid rates must add up to at most 1');
  }
  if (rates.duplicate_callback + rates.lost_callback > 1) {
    throw new RangeError('the duplicate_callback and lost_callback rates must add up to at most 1');
  }
  if (!(Number.isSafeInteger(delay_ms_min) && Number.isSafeInteger(delay_ms_max) && 0 <= delay_ms_min)) {
    throw new RangeError('the delays must be non-negative integers of milliseconds');
  }
  if (delay_ms_min > delay_ms_max) throw new RangeError('delay_ms_min must not be greater than delay_ms_max');
}

export interface Scenarios {
  /** The seed of this run: pass it again (BANK_SEED) to draw the same sequence. */
  readonly seed: string;
  /** Decides how the bank answers attempt number `attempt` (from 1) for a reference it has not recorded. */
  admit(request: { amount: bigint; direction: Direction }, attempt: number): Admission;
}

/** The bank's dice: magic amounts first, then the configured rates drawn from a seeded PRNG. */
export function createScenarios(options: {
  seed: string;
  rates?: Partial<Rates>;
  delay_ms_min: number;
  delay_ms_max: number;
}): Scenarios {
  const rates: Rates = { ...DEFAULT_RATES, ...options.rates };
  const { delay_ms_min, delay_ms_max } = options;
  assertScenarioOptions(rates, delay_ms_min, delay_ms_max);
  const seed = options.seed === '' ? randomBytes(16).toString('hex') : options.seed;
  const random = createRandom(seed);

  const delay = () => delay_ms_min + Math.floor(random() * (delay_ms_max - delay_ms_min + 1));

  const outcome = (failure_code: FailureCode | undefined): Outcome =>
    failure_code
      ? { status: 'failed', failure_code, failure_message: FAILURE_MESSAGES[failure_code] }
      : { status: 'succeeded' };

  const forced = (magic: MagicAmount, attempt: number): Admission => {
    const answer = attempt === 1 ? magic.first_answer : magic.later_answer;
    if (answer === 'accepted' || answer === 'accepted_without_answer') {
      const settlement = { outcome: outcome(magic.failure_code), callbacks: magic.callbacks, delay_ms: delay() };
      return { scenario: magic.scenario, answer, settlement };
    }
    return { scenario: magic.scenario, answer };
  };

  // Every drawn admission takes exactly four numbers whatever its answer, so the draws of later
  // requests do not depend on how earlier ones turned out.
  const drawn = (direction: Direction): Admission => {
    const [answer, result, callbacks] = [random(), random(), random()];
    const delay_ms = delay();
    if (answer < rates.unavailable) return { scenario: 'drawn', answer: 'unavailable' };
    if (answer < rates.unavailable + rates.timeout) return { scenario: 'drawn', answer: 'no_answer' };
    if (answer < rates.unavailable + rates.timeout + rates.invalid) return { scenario: 'drawn', answer: 'invalid' };
    let failure_code: FailureCode | undefined;
    if (result >= rates.success) {
      const short = direction === 'debit' && result < rates.success + rates.insufficient_funds;
      failure_code = short ? 'insufficient_funds' : 'declined';
    }
    const copies =
      callbacks < rates.duplicate_callback ? 3 : callbacks < rates.duplicate_callback + rates.lost_callback ? 0 : 1;
    return {
      scenario: 'drawn',
      answer: 'accepted',
      settlement: { outcome: outcome(failure_code), callbacks: copies, delay_ms },
    };
  };

  return {
    seed,
    admit(request, attempt) {
      const magic = MAGIC_AMOUNTS.find(
        (entry) => entry.amount === request.amount && (entry.direction ?? request.direction) === request.direction,
      );
      return magic ? forced(magic, attempt) : drawn(request.direction);
    },
  };
}
