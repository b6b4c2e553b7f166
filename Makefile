# `make run` and `make test` bootstrap everything on a fresh machine with network to PyPI: .venv is built with
# Python 3.11 (tools/find-python: $(PYTHON) if given, python3.11 from PATH, else a uv-managed CPython 3.11), or they
# stop in seconds with one line saying what to install.
PYTHON ?=
VENV   := .venv
PY     := $(VENV)/bin/python
UV     := $(VENV)/bin/uv
UV_VERSION := 0.13.9
STAMP  := $(VENV)/.installed

# Data: `--data citeulike` is looked for in $HETCOMP_DATA_DIR (when set), ../shared/datasets, then the user cache,
# and downloaded into the cache when absent (hetcomp_tf/data/datafiles.py); the profile is the CLI's default unless set.
DATA    ?= citeulike
PROFILE ?=
OUT     ?= out/run
BENCH_OUT ?= out/bench

.PHONY: install python run test check bench clean

install: $(STAMP)

$(STAMP): requirements/requirements.lock requirements/no-deps.txt pyproject.toml
	@test -x $(PY) || { python=$$(PYTHON=$(PYTHON) UV_VERSION=$(UV_VERSION) tools/find-python) \
		&& echo "$$python -m venv $(VENV)" && "$$python" -m venv $(VENV); }
	$(VENV)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(UV) pip install --python $(PY) -r requirements/requirements.lock
	$(UV) pip install --python $(PY) --no-deps -r requirements/no-deps.txt
	$(UV) pip install --python $(PY) --no-deps -e .
	@touch $(STAMP)

python:  # the interpreter .venv is (or would be) built with
	@PYTHON=$(PYTHON) UV_VERSION=$(UV_VERSION) tools/find-python

run: install
	$(VENV)/bin/hetcomp run --data $(DATA) $(if $(PROFILE),--profile $(PROFILE)) --out $(OUT)

# the suite on every core: a test file runs in one worker (its module fixtures are built once)
PYTEST_PARALLEL ?= -n auto --dist loadfile

test: install
	$(PY) -m pytest -q $(PYTEST_PARALLEL)

# Before a commit: lint, the format, and the tests not marked slow (the whole suite is `make test`, as CI runs it)
check: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -q -m "not slow" $(PYTEST_PARALLEL)

bench: install
	$(VENV)/bin/hetcomp benchmark --data citeulike --profile paper --seeds 3 --jobs 2 --out $(BENCH_OUT)
	$(VENV)/bin/hetcomp latency --data citeulike --profile paper --batch-sizes 1,64 --student-dims 6,16,64,128 --out $(BENCH_OUT)/latency.json
	$(VENV)/bin/hetcomp steptime --data citeulike --profile paper --out $(BENCH_OUT)/steptime.json

clean:
	rm -rf $(VENV) out build *.egg-info
