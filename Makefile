# Every target bootstraps .venv from pyproject.toml when it is missing or older than pyproject.toml.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= .demo-data
# the console's browser tests drive Debian's Chromium (never a browser downloaded at run time)
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

PROTO := src/plantwire/telemetry/sparkplug/sparkplug_b.proto \
	src/plantwire/telemetry/sparkplug/sparkplug_columns.proto

.PHONY: demo test check lint format typecheck bench clean proto

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "plantwire needs Python >= 3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# pysparkplug (Sparkplug B interoperability tests) pins paho-mqtt<2 for a client the tests
	# do not use; the broker tests need paho-mqtt 2, so it comes without its dependencies.
	$(BIN)/python -m pip install --quiet --no-deps 'pysparkplug==0.6.1'
	@touch $(STAMP)

# The demo plant around the platform (docs/demo.md); its data persists in $(DEMO_DIR) between
# runs (plantwire up initialises a new data dir itself). make clean, or rm -rf it, to start over.
demo: $(STAMP)
	$(BIN)/plantwire up --demo --data-dir $(DEMO_DIR) --host 127.0.0.1 --http-port 8080

test: $(STAMP) $(CHROMIUM)
	$(BIN)/pytest

$(CHROMIUM):
	@command -v apt-get >/dev/null || { echo "make test: the console's browser tests need Chromium at $(CHROMIUM) (Debian's chromium package)" >&2; exit 1; }
	$(SUDO) apt-get update -q
	$(SUDO) apt-get install -y -q chromium fonts-dejavu-core

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: $(STAMP)
	$(BIN)/mypy --strict

check: lint typecheck test

# Regenerates the Sparkplug B protobuf module (checked in; a test compares it with protoc's).
proto: $(STAMP)
	$(BIN)/protoc --proto_path=src --python_out=src --pyi_out=src $(PROTO)

bench: $(STAMP)
	@for script in bench/[!_]*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache .hypothesis
