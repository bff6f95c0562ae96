# The verbs people and CI use. `make demo` and `make test` do all set-up on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help
# uv from PATH, else installed once with pip under var/tools (git-ignored)
UV := $(or $(shell command -v uv 2>/dev/null),$(CURDIR)/var/tools/bin/uv)
export UV_LINK_MODE ?= copy
BILLING := .venv/bin/billing
PERIOD ?= 2024-09
CREDIT_PERIOD ?= 2024-10

.PHONY: help install prereqs infra-up up down status lint test test-unit einvoice-validator demo demo-clean bench bench-ingest bench-rating bench-db bench-drafts bench-pipeline chaos bench-portal browser images

help: ## List the verbs
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

prereqs: ## Check the machine has what the local stack needs (JDK, Maven, Go, Pango)
	@scripts/prereqs.sh

$(CURDIR)/var/tools/bin/uv:
	@echo "installing uv with pip into var/tools (once)..."
	@python3 -m pip install --quiet --disable-pip-version-check --target var/tools uv

.venv/.installed: uv.lock pyproject.toml */pyproject.toml services/*/pyproject.toml | $(UV)
	@$(UV) sync --frozen --all-packages
	@touch $@

install: prereqs .venv/.installed ## Install the Python workspace (uv, from uv.lock)

infra-up: install ## Start Kafka, FerretDB over PostgreSQL (with GIN twins of its indexes) and the SMTP sink (built/fetched once, under var/; BILLING_FERRETDB_BACKEND=sqlite for FerretDB over SQLite)
	@scripts/infra.sh up

up: infra-up ## Start the infrastructure and the five services
	@$(BILLING) topics create
	@scripts/services.sh up

down: ## Stop the services and the infrastructure
	@scripts/services.sh down
	@scripts/infra.sh down

status: ## What runs
	@scripts/infra.sh status
	@scripts/services.sh status

lint: install ## ruff, ruff format --check, mypy --strict
	@.venv/bin/ruff check .
	@.venv/bin/ruff format --check .
	@.venv/bin/mypy

test: lint infra-up einvoice-validator browser ## Lint, then unit, integration and e2e tests against the real broker and database
	@.venv/bin/pytest

einvoice-validator: ## Fetch the Mustang e-invoice validator's jars (once, under var/mustang; docs/einvoice.md)
	@scripts/einvoice-validator.sh fetch

browser: ## The portal's browser tests' needs: Debian's Chromium (installed when missing, as root) and axe-core (npm, once, under var/axe)
	@[ -x /usr/bin/chromium ] || [ -n "$${BILLING_CHROMIUM:-}" ] || { [ "$$(id -u)" = 0 ] && apt-get install -y chromium >/dev/null; } || { echo "missing: Chromium (Debian: apt-get install chromium; or set BILLING_CHROMIUM)"; exit 1; }
	@[ -s var/axe/axe.min.js ] || { mkdir -p var/axe && cd var/axe && npm pack --silent axe-core@4.14.1 >/dev/null && tar xzf axe-core-4.14.1.tgz package/axe.min.js && mv package/axe.min.js . && rmdir package; }

test-unit: install ## Only the tests that need no infrastructure
	@.venv/bin/pytest -m "not integration and not e2e"

demo: up ## Run the whole pipeline on the bundled sample bill; show invoices and emails
	@$(BILLING) catalog apply demo/catalog.yaml
	@$(BILLING) ingest demo/focus_sample.csv
	@$(BILLING) wait
	@$(BILLING) invoices generate --period $(PERIOD)
	@$(BILLING) wait
	@# customer credit (docs/money.md): Northwind pays 105.33 for its September invoice of 5.33,
	@# leaving 100.00 of credit; a 2 x 120.00 support charge on its October draft and October's
	@# close: the October invoice of 240.00 takes the 100.00 ("Credit applied") and asks 140.00
	@$(BILLING) pay $$($(BILLING) invoices list --period $(PERIOD) --customer northwind --json \
	  | .venv/bin/python -c 'import json, sys; print(json.load(sys.stdin)[0]["number"])') \
	  --amount 105.33 --method "Bank transfer" --reference NW-SEP-2024 --date 2024-10-07
	@$(BILLING) charges add northwind --period $(CREDIT_PERIOD) --description "Support hours" \
	  --quantity 2 --unit-price 120.00
	@$(BILLING) invoices generate --period $(CREDIT_PERIOD)
	@$(BILLING) wait
	@$(BILLING) demo report --period $(PERIOD) --period $(CREDIT_PERIOD)
	@$(BILLING) credits show northwind
	@$(BILLING) reconcile --period $(PERIOD)
	@echo "portal: http://127.0.0.1:$${BILLING_PORTAL_HTTP_PORT:-8106}/ (set each password once at its link, then sign in)"
	@$(BILLING) users add ops@cumulus.example --operator --reset
	@$(BILLING) users add dana@northwind.example --customer northwind --reset
	@$(BILLING) users add lee@contoso.example --customer contoso --language de --reset

demo-clean: down ## Forget all local data (Kafka topics, database, mail); keeps downloads
	@rm -rf var/kafka/data var/ferretdb var/postgres var/mail var/demo var/log/*.log

bench: bench-ingest bench-rating ## The stage benchmarks (results appended under bench/results/); bench-pipeline runs alone

bench-ingest: infra-up ## Ingest rows/s and peak RSS for 1,000,000 FOCUS rows, beside raw aiokafka
	@.venv/bin/python bench/ingest_bench.py --rows $${ROWS:-1000000}

bench-rating: infra-up ## Rated records/s (the service on the broker) beside a raw pass-through, and the engine alone
	@.venv/bin/python bench/rating_bench.py --records $${RECORDS:-200000} --tiered-percent $${TIERED_PERCENT:-0}

bench-drafts: infra-up ## Invoicing's charges onto drafts (CHARGES, CUSTOMERS; BASELINE=rev alternates that code with the working tree)
	@.venv/bin/python bench/drafts_bench.py --charges $${CHARGES:-100000} --customers $${CUSTOMERS:-200} \
	  $${BASELINE:+--baseline $$BASELINE --runs base,new,base,new}

bench-portal: infra-up ## Portal latency: a customer's invoice list and page with 10,000 invoices, an operator filter over 100,000 (p50/p95)
	@.venv/bin/python bench/portal_bench.py --customer-invoices $${CUSTOMER_INVOICES:-10000} --all-invoices $${ALL_INVOICES:-100000}

bench-db: install ## FerretDB over SQLite vs over PostgreSQL: writes, lookups, updates, aggregation, explain
	@scripts/infra.sh build-ferretdb
	@.venv/bin/python bench/db_bench.py --sizes $${SIZES:-10000,50000,200000}

bench-pipeline: infra-up ## The whole pipeline, bill file to emailed invoices (LINES, CUSTOMERS, PROFILE=single)
	@.venv/bin/python bench/pipeline_bench.py --lines $${LINES:-1000000} --customers $${CUSTOMERS:-1000} \
	  --profile $${PROFILE:-spread} $${PDF_WORKERS:+--pdf-workers $$PDF_WORKERS}

chaos: install ## The fault campaign: a month billed while everything crashes, then proven (SEED, docs/operations.md)
	@.venv/bin/python bench/chaos.py --seed $${SEED:-7} $${FOCUS_LINES:+--focus-lines $$FOCUS_LINES} \
	  $${CUSTOMERS:+--customers $$CUSTOMERS}

images: ## Build the service images (needs a Docker engine)
	@docker info >/dev/null 2>&1 || { echo "make images needs a running Docker engine (docker info failed)"; exit 1; }
	@for s in ingest rating invoicing notify webhooks portal; do \
	  docker build -f services/$$s/Dockerfile -t billing-$$s:dev . || exit 1; done
