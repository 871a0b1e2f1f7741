import type { Caller } from './auth.ts';

declare module 'koa' {
  /** What the edge middleware leaves on `ctx.state` for the routes. */
  interface DefaultState {
    requestId: string;
    caller?: Caller;
    rawBody?: Buffer;
    /** The transaction a request created or settled, for the access log line. */
    transactionId?: string;
    /** The instance that forwarded this request to us, its signature checked (http/forward.ts). */
    forwardedBy?: string;
    /** Set once a write has been handed on (to the actor or the owner): a deadline then means "outcome unknown". */
    writeSent?: boolean;
  }
}
