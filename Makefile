# Entry points. `make test` and `make demo` do all set-up themselves: virtualenv,
# pinned packages, MariaDB binaries (Debian's mariadb-server) and a throwaway server.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
ENV ?= dev
PYTEST_ARGS ?=

.PHONY: venv mariadb lint test demo bench synth layer clean

$(INSTALLED): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(INSTALLED)

venv: $(INSTALLED)

mariadb:
	scripts/ensure-mariadb

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy functions
	@# Extensionless scripts are checked one by one (mypy wants a module name per file).
	for script in scripts/invoke scripts/status scripts/with-mariadb scripts/demo.py; do $(VENV)/bin/mypy $$script || exit 1; done

test: venv mariadb lint
	$(PY) scripts/with-mariadb -- $(PY) -m pytest $(PYTEST_ARGS)

demo: venv mariadb
	$(PY) scripts/with-mariadb -- $(PY) scripts/demo.py

bench: venv mariadb
	$(PY) scripts/with-mariadb -- $(PY) -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) cdk.out build .mypy_cache .ruff_cache .pytest_cache
