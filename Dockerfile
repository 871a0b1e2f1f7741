# syntax=docker/dockerfile:1
#
# One image for every process of the gateway: the service (default CMD), and, by command, the
# migrations (cli/migrate.ts), the bank simulator (cli/bank.ts) and the seed (cli/seed.ts).
# TypeScript runs through tsx, a production dependency: there is no build step and no dev dependency
# in the image. What gets copied is decided by .dockerignore, an allow-list (sources, package*.json,
# tsconfig.json; no tests, bench, Postman, coverage, node_modules or .git).

ARG NODE_MAJOR=20

FROM node:${NODE_MAJOR}-bookworm-slim AS base
WORKDIR /app

# Production dependencies only, installed from the lock file. Scripts stay enabled: esbuild (under
# tsx) has an install script, our `postinstall` applies patches/ to dependencies (patch-package: the
# postgres.js fix for a write after a closed connection), and our `prepare` (git hooks) ends in
# `|| true` where git is absent.
FROM base AS deps
COPY package.json package-lock.json ./
COPY patches ./patches
RUN npm ci --omit=dev --no-audit --no-fund \
    && npm cache clean --force

FROM base AS runtime
ENV NODE_ENV=production \
    PORT=3000 \
    DASHBOARD_PORT=5555
# Code and dependencies stay owned by root, so the process (user node) can't rewrite them.
COPY --from=deps /app/node_modules ./node_modules
COPY . .
USER node
EXPOSE 3000 5555

# slim has no curl or wget: ask node's own fetch. /health answers 503 when a dependency is down.
# Containers that run another command from this image (bank, migrate, seed) override or disable it.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/health', { signal: AbortSignal.timeout(4000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

# node itself runs the service (no npm or npx in between), so SIGTERM reaches main.ts, which drains
# requests in flight and closes the pools. node as PID 1 does not reap orphaned children and has no
# default handler for signals it doesn't listen to: run it under an init (`docker run --init`, or
# `init: true` in docker-compose.yml, which this project's compose file sets).
CMD ["node", "--import", "tsx", "main.ts"]
