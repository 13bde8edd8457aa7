# payops: `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PAYOPS := $(VENV)/bin/payops
STAMP  := $(VENV)/.installed
DATE   ?=
DATE_OPT := $(if $(DATE),--date $(DATE),)
PYTEST_ARGS ?=

export PAYOPS_DB ?= data/payops.duckdb

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	$(PY) -m ipykernel install --sys-prefix --name payops --display-name "payops (Python 3)" > /dev/null
	@touch $(STAMP)

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | \
	  awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

.PHONY: setup
setup: $(STAMP) ## Create .venv, install payops with its dev tools, register the Jupyter kernel

# The demo lives in its own file with its own settings (demo.payops.toml: single-user, no
# [roles]), so it never touches PAYOPS_DB; `payops demo --replace` also refuses to delete a
# database holding anything synced, decided or audited that the demo did not make.
DEMO_DB      := data/demo.duckdb
DEMO_CONFIG  := demo.payops.toml
DEMO_REPORTS := reports/demo
DEMO_ENV      = PAYOPS_DB=$(DEMO_DB) PAYOPS_CONFIG=$(DEMO_CONFIG) PAYOPS_REPORTS_DIR=$(DEMO_REPORTS)

.PHONY: demo
demo: setup ## Build the demo marketplace in data/demo.duckdb (never your database), run its reports, show the overview
	$(DEMO_ENV) $(PAYOPS) demo --replace
	$(DEMO_ENV) $(PAYOPS) analytics
	$(DEMO_ENV) $(PAYOPS) report daily
	$(DEMO_ENV) $(PAYOPS) report weekly
	$(DEMO_ENV) $(PAYOPS) report monthly
	@echo
	@echo "Demo database: $(DEMO_DB)  (open it with: PAYOPS_DB=$(DEMO_DB) $(PAYOPS) status, or make lab PAYOPS_DB=$(DEMO_DB))"
	@echo "Reports: open $(DEMO_REPORTS)/index.html (daily, weekly and monthly, newest first)"

# A local Stripe stand-in (payops/devstripe.py: the tests' fake Stripe, loaded with the demo's
# payments) on 127.0.0.1, and `payops webhooks serve` receiving the signed events it posts.
# Both run in the background; their pid files, logs and env file are in data/. What you sync and
# process goes into a copy of the demo, data/demo-stripe.duckdb (made again when the demo is
# rebuilt), so `make demo` can still rebuild data/demo.duckdb afterwards.
STRIPE_PORT   ?= 12111
WEBHOOK_PORT  ?= 8787
DEVSTRIPE_ENV := data/devstripe.env
DEVSTRIPE_PID := data/devstripe.pid
WEBHOOKS_PID  := data/devstripe-webhooks.pid
DEVSTRIPE_DB  := data/demo-stripe.duckdb
DEVSTRIPE_RUN  = PAYOPS_DB=$(DEVSTRIPE_DB) PAYOPS_CONFIG=$(DEMO_CONFIG) PAYOPS_REPORTS_DIR=$(DEMO_REPORTS)

$(DEVSTRIPE_DB): $(DEMO_DB)
	cp $(DEMO_DB) $@

.PHONY: demo-stripe
demo-stripe: setup ## After `make demo`: a local Stripe stand-in with the demo's payments + webhook receiver (no key, no internet)
	@test -f $(DEMO_DB) || { echo "no $(DEMO_DB): run make demo first"; exit 1; }
	@if [ -s $(DEVSTRIPE_PID) ] && kill -0 $$(cat $(DEVSTRIPE_PID)) 2>/dev/null; then \
	  echo "already running (pid $$(cat $(DEVSTRIPE_PID))); make demo-stripe-stop stops it"; exit 1; fi
	@$(MAKE) --no-print-directory $(DEVSTRIPE_DB)
	@rm -f $(DEVSTRIPE_ENV)
	@nohup $(PY) -m payops.devstripe --db $(DEMO_DB) --port $(STRIPE_PORT) \
	  --webhook-url http://127.0.0.1:$(WEBHOOK_PORT)/webhooks --env-file $(DEVSTRIPE_ENV) \
	  > data/devstripe.log 2>&1 < /dev/null & echo $$! > $(DEVSTRIPE_PID)
	@for i in $$(seq 300); do test -s $(DEVSTRIPE_ENV) && break; \
	  kill -0 $$(cat $(DEVSTRIPE_PID)) 2>/dev/null || { cat data/devstripe.log; rm -f $(DEVSTRIPE_PID); exit 1; }; \
	  sleep 0.1; done; test -s $(DEVSTRIPE_ENV) || { echo "the stand-in did not start: see data/devstripe.log"; exit 1; }
	@set -a; . ./$(DEVSTRIPE_ENV); set +a; $(DEVSTRIPE_RUN) PYTHONUNBUFFERED=1 nohup $(PAYOPS) webhooks serve --port $(WEBHOOK_PORT) \
	  > data/devstripe-webhooks.log 2>&1 < /dev/null & echo $$! > $(WEBHOOKS_PID)
	@echo "Stripe stand-in: $$(tail -n 1 data/devstripe.log)"
	@echo "Webhook receiver: http://127.0.0.1:$(WEBHOOK_PORT)/webhooks (log: data/devstripe-webhooks.log)"
	@echo "Use it (the key is fake, the webhook secret is made for this run):"
	@sed 's/^/  /' $(DEVSTRIPE_ENV)
	@echo "  export $(DEVSTRIPE_RUN)    # a copy of the demo"
	@echo "Then: $(PAYOPS) sync; $(PAYOPS) refunds list; $(PAYOPS) refunds process;"
	@echo "      tail data/devstripe-webhooks.log   (the signed refund webhooks arriving)"
	@echo "Stop both: make demo-stripe-stop"

.PHONY: demo-stripe-stop
demo-stripe-stop: ## Stop the Stripe stand-in and webhook receiver started by `make demo-stripe`
	@for f in $(WEBHOOKS_PID) $(DEVSTRIPE_PID); do \
	  if [ -s $$f ] && kill -0 $$(cat $$f) 2>/dev/null; then kill -TERM $$(cat $$f) && echo "stopped pid $$(cat $$f) ($$f)"; \
	  else echo "not running ($$f)"; fi; rm -f $$f; done
	@rm -f $(DEVSTRIPE_ENV)

.PHONY: status
status: setup ## Show the status overview of the database (PAYOPS_DB, default data/payops.duckdb)
	$(PAYOPS) status

.PHONY: lint
lint: setup ## Static checks: ruff (style, bugs, complexity) and mypy over payops/
	$(VENV)/bin/ruff check payops tests bench
	$(VENV)/bin/mypy

.PHONY: test
test: setup lint test-deps ## Run the static checks, then the whole test suite (unit, servers, notebooks, browser, hub, Spark)
	$(PY) -m pytest $(PYTEST_ARGS)

.PHONY: test-deps
test-deps: ## What the tests need besides .venv: the hub tests' configurable-http-proxy (npm, pinned)
	@if command -v npm >/dev/null 2>&1; then $(MAKE) --no-print-directory $(HUB_PROXY); \
	else echo "npm is missing: the JupyterHub tests will be skipped (install node and npm to run them)"; fi

.PHONY: test-fast
test-fast: setup ## Run the fast unit tests only (no servers, kernels or browser)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

.PHONY: bench
bench: setup ## Run every benchmark in bench/ (prints figures and ratios)
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

.PHONY: lock
lock: setup ## Refresh constraints.txt from the current virtual environment
	$(PY) -m pip freeze --exclude-editable | grep -v '^payops' > constraints.txt

.PHONY: clean
clean: ## Remove generated reports, test artefacts and caches (keeps data/ and .venv)
	rm -rf test-artifacts .pytest_cache
	find reports -mindepth 1 ! -name README.md -exec rm -rf {} +

# The notebook servers run kernels in notebooks/, so relative paths are made absolute here.
NB_ENV = PAYOPS_DB="$(abspath $(PAYOPS_DB))" \
         PAYOPS_CONFIG="$(if $(PAYOPS_CONFIG),$(abspath $(PAYOPS_CONFIG)),$(if $(wildcard payops.toml),$(abspath payops.toml),))"
REVIEW_PORT ?= 8866
TOKEN ?=

.PHONY: lab
lab: setup ## Open JupyterLab (payops kernel, notebooks folder) on 127.0.0.1
	$(NB_ENV) $(VENV)/bin/jupyter lab --ip=127.0.0.1 --no-browser --ServerApp.root_dir=notebooks \
	  --MappingKernelManager.default_kernel_name=payops $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: review
review: setup ## Serve the refund review app with Voila on 127.0.0.1:8866, code hidden (TOKEN=... or one is generated)
	@token="$(TOKEN)"; [ -n "$$token" ] || token=$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(24))'); \
	user=$$($(PY) -c 'import payops; print(payops.get_settings().user)'); \
	echo "Refund review (as $$user): http://127.0.0.1:$(REVIEW_PORT)/?token=$$token"; \
	$(NB_ENV) exec $(VENV)/bin/voila notebooks/refund_review.ipynb --no-browser --port=$(REVIEW_PORT) \
	  --Voila.ip=127.0.0.1 --strip_sources=True --token="$$token"

# Team mode: JupyterHub (logins) + payops serve (the one writer), all on 127.0.0.1.
HUB_DIR   ?= .hub
HUB_PORT  ?= 8000
HUB_USERS := vic ana ben carla
HUB_PROXY := hub/node_modules/.bin/configurable-http-proxy

$(HUB_PROXY): hub/package.json hub/package-lock.json
	npm ci --prefix hub --no-audit --no-fund --loglevel=error
	@touch $@

.PHONY: hub
hub: setup $(HUB_PROXY) ## JupyterHub on 127.0.0.1:8000 (HUB_PORT): vic, ana, ben, carla log in; payops serve writes; Ctrl-C stops all
	@mkdir -p $(HUB_DIR) && chmod 700 $(HUB_DIR)
	@test -s $(HUB_DIR)/audit.key || (umask 077; $(PY) -c 'import secrets; print(secrets.token_urlsafe(32))' > $(HUB_DIR)/audit.key)
	@test -s $(HUB_DIR)/passwords.txt || (umask 077; for u in $(HUB_USERS); do \
	  echo "$$u:$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(9))')"; done > $(HUB_DIR)/passwords.txt)
	@test -f "$(PAYOPS_DB)" || $(PAYOPS) demo
	@echo "JupyterHub: http://127.0.0.1:$(HUB_PORT)/  runtime files in $(HUB_DIR)/; logins (user:password):"
	@sed 's/^/  /' $(HUB_DIR)/passwords.txt
	PAYOPS_HUB_DIR="$(abspath $(HUB_DIR))" PAYOPS_HUB_PORT=$(HUB_PORT) PAYOPS_DB="$(abspath $(PAYOPS_DB))" \
	  PAYOPS_CONFIG="$(abspath hub/payops.toml)" exec $(VENV)/bin/jupyterhub -f hub/jupyterhub_config.py

.PHONY: hub-stop
hub-stop: ## Stop a hub started by `make hub` (with its proxy, payops serve and every user's server)
	@if [ -s $(HUB_DIR)/jupyterhub.pid ]; then kill -TERM $$(cat $(HUB_DIR)/jupyterhub.pid) && echo "hub stopping"; \
	  else echo "no hub running ($(HUB_DIR)/jupyterhub.pid)"; fi

# Scheduled reports (cron / CI): papermill runs notebooks/report.ipynb under the payops kernel.
.PHONY: report-daily report-weekly report-monthly reports
report-daily: setup ## Publish the daily report into reports/ (yesterday, or the day DATE=YYYY-MM-DD)
	$(PAYOPS) report daily $(DATE_OPT)

report-weekly: setup ## Publish the weekly report (last complete ISO week, or the week of DATE=YYYY-MM-DD)
	$(PAYOPS) report weekly $(DATE_OPT)

report-monthly: setup ## Publish the monthly report (last complete month, or the month of DATE=YYYY-MM-DD)
	$(PAYOPS) report monthly $(DATE_OPT)

reports: setup ## Publish the daily, weekly and monthly reports (DATE=YYYY-MM-DD picks the periods)
	$(PAYOPS) report daily $(DATE_OPT)
	$(PAYOPS) report weekly $(DATE_OPT)
	$(PAYOPS) report monthly $(DATE_OPT)
