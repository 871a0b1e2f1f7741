import Router from '@koa/router';
import { EnvelopArmor } from '@escape.tech/graphql-armor';
import { printSchema } from 'graphql';
import { createYoga, type YogaLogger } from 'graphql-yoga';
import type { Context } from 'koa';
import { z } from 'zod';
import type { Logger } from '../../logger.ts';
import { requireCaller } from '../auth.ts';
import { readJsonBody } from '../body.ts';
import { errors, type ApiError } from '../errors.ts';
import type { Forwarder } from '../forward.ts';
import { idempotencyKey, type IdempotencyGate } from '../idempotency.ts';
import { rateLimitError } from '../rate-limit-response.ts';
import { countRequest, type ApiLimits, type Charge } from '../rate-limit.ts';
import { transactionCreation } from '../routes/transactions.ts';
import { parseInput } from '../validation.ts';
import { catalogueErrors } from './errors.ts';
import { chargesOf, isIntrospection, readOperation } from './operation.ts';
import { schema, type GraphqlContext, type GraphqlServices } from './schema.ts';

export const GRAPHQL_PATH = '/graphql';

/**
 * What a GraphQL document may ask at most (graphql-armor). The deepest useful query is 5 levels
 * (`transactions { edges { node { failure { code } } } }`). Cost is armor's: 1 per scalar, 2 per
 * object, 1.5x per level, times a literal `first`: a full page of 100 transactions with every field
 * costs 8,000, so one such page passes and two (or ten aliased ones) do not. Introspection's
 * `__schema` is left out of depth and cost (its standard query is 13 levels deep, 163 tokens), not
 * `__type`, aliases, directives or tokens.
 */
export const GRAPHQL_LIMITS = {
  depth_max: 6,
  cost_max: 10_000,
  aliases_max: 10,
  directives_max: 10,
  tokens_max: 1000,
} as const;

// @koa/router matches case-insensitively and with a trailing slash; an error of these paths is GraphQL's.
const GRAPHQL_PATHS = /^\/graphql(?:\/|$)/i;

/** Whether an error answered on this path is written in GraphQL's shape rather than the REST contract's. */
export const isGraphqlPath = (path: string) => GRAPHQL_PATHS.test(path);

/** A GraphQL request as JSON (GraphQL over HTTP); strict, as the REST bodies are. One request, no batches. */
export const graphqlRequest = z.strictObject({
  query: z.string().min(1),
  operationName: z.string().nullish(),
  variables: z.record(z.string(), z.unknown()).nullish(),
  extensions: z.record(z.string(), z.unknown()).nullish(),
});

export interface GraphqlRoutesDeps extends Omit<GraphqlServices, 'creation' | 'forwarding'> {
  gate: IdempotencyGate;
  forwarding: Pick<Forwarder, 'askOwner'>;
  limits: ApiLimits;
  bodySizeMaxBytes: number;
  log: Logger;
}

/** graphql-yoga's log lines, in the service's log. */
function yogaLogger(log: Logger): YogaLogger {
  const line = (args: unknown[]) => ({ detail: args.map(String).join(' ') });
  return {
    debug: (...args) => log.debug(line(args), 'graphql'),
    info: (...args) => log.info(line(args), 'graphql'),
    warn: (...args) => log.warn(line(args), 'graphql'),
    error: (...args) => log.error(line(args), 'graphql'),
  };
}

/**
 * `POST /graphql`, the GraphQL API over the same engine as the REST routes, and
 * `GET /graphql/schema.graphql`, its schema in SDL.
 *
 * Koa keeps the request: the edge's middleware ran (request id, security headers, authentication),
 * this route reads the body with the REST limits (413, 415, malformed JSON), counts the rate limits,
 * requires the key and the Idempotency-Key, and then hands the request to yoga through its fetch API
 * (`yoga.fetch`) and sends yoga's answer as its own. Not `handleNodeRequestAndResponse` with
 * `ctx.respond = false`: yoga would then read the socket and write the answer itself, bypassing the
 * body limit, the request deadline's 503, the access log's status and the headers set after the routes.
 */
export function graphqlRoutes(deps: GraphqlRoutesDeps): Router {
  const services: GraphqlServices = {
    accounts: deps.accounts,
    readModel: deps.readModel,
    users: deps.users,
    currencies: deps.currencies,
    creation: transactionCreation(deps),
    forwarding: deps.forwarding,
  };
  const armor = new EnvelopArmor({
    maxDepth: { n: GRAPHQL_LIMITS.depth_max },
    costLimit: { maxCost: GRAPHQL_LIMITS.cost_max },
    maxAliases: { n: GRAPHQL_LIMITS.aliases_max },
    maxDirectives: { n: GRAPHQL_LIMITS.directives_max },
    maxTokens: { n: GRAPHQL_LIMITS.tokens_max },
  });
  const yoga = createYoga<GraphqlContext>({
    schema,
    graphqlEndpoint: GRAPHQL_PATH,
    // Its page loads GraphiQL from a CDN, which the service's pages never do.
    graphiql: false,
    landingPage: false,
    // The edge answers CORS; a request is one operation (its Idempotency-Key names it).
    cors: false,
    batching: false,
    multipart: false,
    // Every error is mapped to the catalogue by `catalogueErrors`, which shows no internal message.
    maskedErrors: false,
    logging: yogaLogger(deps.log),
    plugins: [...armor.protect().plugins, catalogueErrors(deps.log)],
  });
  const sdl = printSchema(schema);

  /** Counts the request against the rate limits (`charges`: its per-caller ones); 429 when over one. */
  async function count(ctx: Context, charges: readonly Charge[]): Promise<void> {
    const retry_ms = await countRequest(deps.limits, ctx, charges);
    if (retry_ms !== undefined) throw rateLimitError(retry_ms);
  }

  /** The request's body as GraphQL parameters; a refused body still counts against the global limit. */
  async function readRequest(ctx: Context) {
    try {
      return parseInput(graphqlRequest, await readJsonBody(ctx, deps.bodySizeMaxBytes));
    } catch (error) {
      await count(ctx, []);
      throw error;
    }
  }

  const router = new Router();

  router.post(GRAPHQL_PATH, async (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    const request = await readRequest(ctx);
    const operation = readOperation(request.query, request.operationName ?? undefined, GRAPHQL_LIMITS.tokens_max);
    await count(ctx, chargesOf(operation, request.variables ?? {}));
    const fields = operation?.fields.filter((field) => !isIntrospection(field)) ?? [];
    if (fields.length > 0) requireCaller(ctx.state);
    if (operation?.kind === 'mutation') {
      if (fields.length !== 1) throw oneMutation();
      idempotencyKey(ctx);
    }
    const response = await yoga.fetch(
      `http://gateway${GRAPHQL_PATH}`,
      {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: mediaType(ctx) },
        body: ctx.state.rawBody?.toString('utf8'),
      },
      { koa: ctx, services },
    );
    ctx.status = response.status;
    ctx.type = response.headers.get('content-type') ?? 'application/json';
    ctx.body = await response.text();
  });

  router.get(`${GRAPHQL_PATH}/schema.graphql`, (ctx) => {
    ctx.type = 'text/plain; charset=utf-8';
    ctx.body = sdl;
  });

  return router;
}

/** A mutation request with more (or fewer) than one field: one Idempotency-Key names one operation. */
function oneMutation(): ApiError {
  const details = [{ field: '(operation)', message: 'a mutation request holds exactly one field' }];
  return errors.validationError().with({ details });
}

/** The answer's media type: GraphQL's own when the client accepts it, else JSON. */
function mediaType(ctx: Context): string {
  return ctx.get('Accept').includes('application/graphql-response+json')
    ? 'application/graphql-response+json'
    : 'application/json';
}
