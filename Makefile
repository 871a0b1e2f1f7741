.PHONY: dev test lint migrate seed

dev: ## the service on local Postgres and Redis
	npm start

test: ## the test suite (creates and migrates its own database)
	npm test

lint: ## prettier, eslint and the type check
	npm run lint

migrate: ## apply the database migrations
	npm run migrate

seed: ## the demo users of CREDENTIALS.md
	npm run seed
