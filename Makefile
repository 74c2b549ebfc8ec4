# Two commands do all the set-up on a fresh machine with Python 3.11 and make:
#   make demo   installs, then runs the whole pipeline on the embedded default stack
#   make test   installs, then runs the test suite (what CI runs)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Test files run on this many pytest-xdist workers, one file on one worker (module fixtures such as
# the parity test's three engines are built once), the slow ones first (tests/conftest.py);
# 0 runs everything in this process.
TEST_WORKERS ?= 2

.PHONY: setup demo test bench up down clean

setup: $(STAMP)

# --compile-bytecode: every `loyalty` process (a pipeline run imports some 3,500 modules) reads
# compiled modules, also where PYTHONDONTWRITEBYTECODE keeps Python from caching them itself.
$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip uv
	$(VENV)/bin/uv pip install --python $(PY) --quiet --compile-bytecode -c requirements.lock -e ".[test]"
	touch $(STAMP)

demo: setup
	PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/loyalty demo $(ARGS)

test: setup
	PATH="$(abspath $(VENV))/bin:$$PATH" ./scripts/install-test-deps.sh
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

bench: setup
	PATH="$(abspath $(VENV))/bin:$$PATH" ./scripts/fetch-datasets.sh
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m bench $(ARGS)

up: setup
	PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/loyalty up

down: setup
	PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/loyalty down

clean:
	rm -rf data .pytest_cache
