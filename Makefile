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

.PHONY: demo
demo: setup ## Build the demo marketplace database, run the reports and show the overview
	$(PAYOPS) demo --replace
	@echo
	@echo "Demo database: $(PAYOPS_DB)  (open it with: $(PAYOPS) status, or make lab)"

.PHONY: status
status: setup ## Show the status overview of $(PAYOPS_DB)
	$(PAYOPS) status

.PHONY: test
test: setup ## Run the whole test suite (unit, servers, notebooks, browser)
	$(PY) -m pytest $(PYTEST_ARGS)

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
	  --MappingKernelManager.default_kernel_name=payops

.PHONY: review
review: setup ## Serve the refund review app with Voila on 127.0.0.1:8866, code hidden (TOKEN=... or one is generated)
	@token="$(TOKEN)"; [ -n "$$token" ] || token=$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(24))'); \
	echo "Refund review for $${PAYOPS_USER:-$$USER}: http://127.0.0.1:$(REVIEW_PORT)/?token=$$token"; \
	$(NB_ENV) exec $(VENV)/bin/voila notebooks/refund_review.ipynb --no-browser --port=$(REVIEW_PORT) \
	  --Voila.ip=127.0.0.1 --strip_sources=True --token="$$token"
