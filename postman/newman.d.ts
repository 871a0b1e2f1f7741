// newman ships no type declarations; this is the part of its API that cli/newman.ts uses.
declare module 'newman' {
  import type { EventEmitter } from 'node:events';

  export interface NewmanStat {
    total: number;
    failed: number;
    pending: number;
  }

  export interface NewmanRunFailure {
    error: { name: string; message: string; test?: string };
    at?: string;
    source?: { name?: string };
    parent?: { name?: string };
  }

  export interface NewmanRunSummary {
    run: {
      stats: Record<
        'iterations' | 'items' | 'scripts' | 'prerequests' | 'requests' | 'tests' | 'assertions',
        NewmanStat
      >;
      failures: NewmanRunFailure[];
      error?: unknown;
    };
  }

  export interface NewmanRunOptions {
    collection: string | object;
    environment?: string | object;
    envVar?: { key: string; value: string }[];
    reporters?: string | string[];
    timeoutRequest?: number;
    timeoutScript?: number;
    bail?: boolean;
  }

  export function run(
    options: NewmanRunOptions,
    callback: (error: Error | null, summary: NewmanRunSummary) => void,
  ): EventEmitter;

  const newman: { run: typeof run };
  export default newman;
}
