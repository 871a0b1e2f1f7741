# `make` lists the targets. Local targets use Postgres on 127.0.0.1:5432 and Redis on :6379;
# with COMPOSE=1, test, migrate, seed, repl and reconcile use the docker-compose.yml services.

# `docker compose` (v2) where it exists, else `docker-compose` (v1); override with DC=...
ifndef DC
DC := $(shell docker compose version >/dev/null 2>&1 && echo 'docker compose' || echo docker-compose)
endif
POSTGRES_PASSWORD ?= gateway

# The compose Postgres and Redis as published on the host (docker-compose.yml: 5433 and 6380).
# The tests get their own database and Redis db 15, apart from the running gateways' data.
COMPOSE_TEST_ENV = \
  TEST_DATABASE_URL=postgres://postgres:$(POSTGRES_PASSWORD)@127.0.0.1:5433/gateway_test \
  DATABASE_URL=postgres://postgres:$(POSTGRES_PASSWORD)@127.0.0.1:5433/gateway_test \
  REDIS_URL=redis://127.0.0.1:6380/15

.DEFAULT_GOAL := help
.PHONY: help dev test lint migrate seed up down clean build logs shell ps bench repl reconcile bank compose-deps

help: ## list the targets
	@awk 'BEGIN { FS = ":.*## " } /^[a-zA-Z_-]+:.*## / && !seen[$$1]++ { printf "  make %-10s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

dev: ## the service on local Postgres and Redis
	npm start

ifeq ($(COMPOSE),1)
test: compose-deps ## the test suite (creates and migrates its own database); COMPOSE=1: on the compose services
	$(COMPOSE_TEST_ENV) npm test
else
test: ## the test suite (creates and migrates its own database); COMPOSE=1: on the compose services
	npm test
endif

lint: ## prettier, eslint and the type check
	npm run lint

ifeq ($(COMPOSE),1)
migrate: ## apply the database migrations (COMPOSE=1: in the compose stack)
	$(DC) run --rm migrate
else
migrate: ## apply the database migrations (COMPOSE=1: in the compose stack)
	npm run migrate
endif

ifeq ($(COMPOSE),1)
seed: ## the demo users of CREDENTIALS.md (COMPOSE=1: in the compose stack)
	$(DC) --profile tools run --rm seed
else
seed: ## the demo users of CREDENTIALS.md (COMPOSE=1: in the compose stack)
	npm run seed
endif

up: ## build the image and start everything: front door :3000, gateway-1 :3001, gateway-2 :3002, dashboard :5555, bank :4000
	$(DC) up -d --build

down: ## stop and remove the containers (the data volumes stay)
	$(DC) down

clean: ## stop everything and delete the Postgres and Redis volumes (all data)
	$(DC) --profile tools down --volumes --remove-orphans

build: ## build the gateway image
	$(DC) build

logs: ## follow the logs of every service
	$(DC) logs -f --tail=100

shell: ## a shell in the gateway-1 container
	$(DC) exec gateway-1 sh

ps: ## the services and their health
	$(DC) ps

bench: ## the autocannon load tests (bench/)
	npm run bench

ifeq ($(COMPOSE),1)
repl: ## the admin REPL attached to a running instance (COMPOSE=1: gateway-1's)
	$(DC) exec gateway-1 npm run repl
else
repl: ## the admin REPL attached to a running instance (COMPOSE=1: gateway-1's)
	npm run repl
endif

ifeq ($(COMPOSE),1)
reconcile: ## check the money invariants against the journal and read model (COMPOSE=1: in gateway-1)
	$(DC) exec gateway-1 npm run reconcile
else
reconcile: ## check the money invariants against the journal and read model (COMPOSE=1: in gateway-1)
	npm run reconcile
endif

bank: ## the bank simulator alone, on the host
	npm run bank

# Starts the compose Postgres and Redis and waits for them (`up --wait` is v2 only).
compose-deps:
	$(DC) up -d postgres redis
	@for i in $$(seq 1 60); do \
		$(DC) exec -T postgres pg_isready -h 127.0.0.1 -U postgres -q >/dev/null 2>&1 \
			&& $(DC) exec -T redis redis-cli ping >/dev/null 2>&1 && exit 0; \
		sleep 1; \
	done; echo 'compose Postgres or Redis did not become ready' >&2; exit 1
