# Entry points. `make test` and `make demo` do all set-up themselves: virtualenv,
# pinned packages, MariaDB binaries (Debian's mariadb-server) and a throwaway server.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
ENV ?= dev
PYTEST_ARGS ?=

.PHONY: venv mariadb lint test soak demo bench synth layer local-lambda clean

$(INSTALLED): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(INSTALLED)

venv: $(INSTALLED)

mariadb:
	scripts/ensure-mariadb

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy functions infra app.py
	@# Extensionless scripts are checked one by one (mypy wants a module name per file).
	for script in scripts/invoke scripts/status scripts/with-mariadb scripts/demo.py scripts/local_durable.py; do $(VENV)/bin/mypy $$script || exit 1; done

# The local Lambda the e2e tests and the demo run the function on (docs/local-lambda.md): pip installs
# awslambdaric (pinned) and the runtime's boto3 for the runtime's Python (pyenv's 3.13) under
# build/local-lambda, and the stack is synthesized for this machine's CPU. Offline once built.
local-lambda: venv
	$(PY) -m tests.local_lambda.build --env $(ENV)

test: venv mariadb lint local-lambda
	$(PY) scripts/with-mariadb -- $(PY) -m pytest $(PYTEST_ARGS)

# The long model-based history (tests/integration/test_model.py): 30+ days, 200+ steps,
# a random seed unless MODEL_SEED is given; the seed is printed for a replay.
MODEL_DAYS ?= 30
MODEL_STEPS ?= 200
soak: venv mariadb
	MODEL_DAYS=$(MODEL_DAYS) MODEL_STEPS=$(MODEL_STEPS) $(PY) scripts/with-mariadb -- \
		$(PY) -m pytest tests/integration/test_model.py -s -q $(PYTEST_ARGS)

demo: venv mariadb local-lambda
	$(PY) scripts/with-mariadb -- $(PY) scripts/demo.py

# `make bench ROWS=10000000`: the large-file proof, this sync and the floor at
# 1M and ROWS rows in one run, so that time and memory scale within the same run.
ROWS ?=
ifneq ($(ROWS),)
BENCH_ARGS ?= --sizes 1000000,$(ROWS) --contenders floor,sync --scenarios resync,day_two_a,day_two_b
endif
bench: venv mariadb
	$(PY) scripts/with-mariadb -- $(PY) -m bench.run $(BENCH_ARGS)

# Both Lambda layers for the environment's architecture, without Docker; fails over 250 MB.
layer: venv
	$(PY) -m layers.build --env $(ENV)

# Offline: the app synthesizes itself (no cdk CLI, no AWS credentials); cdk-nag fails it on any
# unacknowledged finding. W3005 (a DependsOn that a GetAtt already implies) is how CDK writes
# its own resources, harmless, so cfn-lint ignores only that.
synth: layer
	rm -rf build/cdk.out/$(ENV)
	JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION=1 \
		$(PY) app.py -c env=$(ENV) -o build/cdk.out/$(ENV)
	$(VENV)/bin/cfn-lint --ignore-checks W3005 -- build/cdk.out/$(ENV)/*.template.json

clean:
	rm -rf $(VENV) cdk.out build .mypy_cache .ruff_cache .pytest_cache
