# randhet: `make demo` runs the whole pipeline on the embedded digits set, `make test` the tests.
# Both create .venv (Python 3.11) and install the pinned dependencies on first use.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.randhet-installed
PIP := $(BIN)/python -m pip --disable-pip-version-check -q
CONFIG ?= configs/digits.toml

.PHONY: setup demo test test-fast lint clean bench-setup gpu-wheels

setup: $(STAMP)

$(STAMP): requirements/base.txt requirements/nodeps.txt requirements/dev.txt pyproject.toml
	@command -v $(PY) >/dev/null 2>&1 || { \
	  echo "randhet needs Python 3.11, and '$(PY)' was not found. Install Python 3.11 (e.g. 'pyenv install 3.11') or run 'make PY=/path/to/python3.11 ...'."; exit 1; }
	@$(PY) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' || { \
	  echo "randhet needs Python 3.11, but '$(PY)' is $$($(PY) -V 2>&1). Run 'make PY=/path/to/python3.11 ...'."; exit 1; }
	@test -x $(BIN)/python || $(PY) -m venv $(VENV) || { echo "Could not create $(VENV) with $(PY) (is the venv module installed?)."; exit 1; }
	@echo "Installing pinned dependencies into $(VENV) (torch is large: this takes a few minutes the first time)..."
	@$(PIP) install -r requirements/base.txt -r requirements/dev.txt || { \
	  echo "Installing requirements/base.txt failed (see the pip error above): check the network or package index, then run 'make setup' again."; exit 1; }
	@$(PIP) install --no-deps --ignore-requires-python -r requirements/nodeps.txt || { \
	  echo "Installing lava-nc/lava-dl/torchattacks failed (see the pip error above), then run 'make setup' again."; exit 1; }
	@$(PIP) install --no-deps --no-build-isolation -e . || { echo "Installing randhet itself failed (see above)."; exit 1; }
	@touch $(STAMP)

demo: setup
	$(BIN)/randhet run --config $(CONFIG) --out runs/demo

test: setup
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not upstream"

bench-setup: setup
	$(PIP) install --no-deps -r requirements/bench.txt

# wheels for benchmarks/gpu_check.sh on a GPU machine that cannot download (see benchmarks/README.md)
gpu-wheels:
	python3 benchmarks/gpu_wheels.py

lint: setup
	$(BIN)/ruff check randhet tests benchmarks

clean:
	rm -rf runs .pytest_cache
