# hoidong — two commands on a fresh clone: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Stamps: reinstall only when pyproject.toml changes.
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP     := $(VENV)/.dev-installed

.PHONY: run test lint typecheck pytest clean help settings-table bench-media bench-camera bench-recording bench-transcription bench-incremental bench-archive bench-soak bench-reliability

help:
	@echo "make run   - install into .venv, migrate, serve on http://127.0.0.1:8080 (data in ./data)"
	@echo "make test  - install dev dependencies, run ruff, mypy and the whole test suite"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(RUNTIME_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	@touch $@

$(DEV_STAMP): pyproject.toml $(RUNTIME_STAMP)
	$(BIN)/pip install -q -e ".[dev]"
	@touch $@

run: $(RUNTIME_STAMP)
	$(BIN)/hoidong migrate
	$(BIN)/hoidong serve

lint: $(DEV_STAMP)
	$(BIN)/ruff check .

typecheck: $(DEV_STAMP)
	$(BIN)/mypy

pytest: $(DEV_STAMP)
	$(BIN)/pytest

test: lint typecheck pytest

# Benchmarks (see bench/README.md); results in bench/results/, figures in docs/benchmarks.md.
bench-media: $(RUNTIME_STAMP)
	$(BIN)/python -m bench.media

bench-transcription: $(DEV_STAMP)
	$(BIN)/python -m bench.transcription

bench-archive: $(RUNTIME_STAMP)
	$(BIN)/python -m bench.archive

bench-incremental: $(DEV_STAMP)
	$(BIN)/python -m bench.incremental

bench-recording: $(RUNTIME_STAMP)
	$(BIN)/python -m bench.recording

bench-camera: $(RUNTIME_STAMP)
	$(BIN)/python -m bench.camera

# 20 participants for 30 minutes (about an hour with the jobs after the end).
bench-soak: $(DEV_STAMP)
	$(BIN)/python -m bench.soak

# The reliability figures (docs/reliability.md): the tests that show each property, with
# their figures written, then gathered (the soak's come from bench/results/soak.json).
RELIABILITY_TESTS := tests/test_fuzz.py tests/test_schemathesis.py tests/test_pg_restart.py \
	tests/test_api.py::test_access_policy_matches_the_table \
	tests/test_segments.py::test_a_storage_outage_loses_nothing tests/test_crash.py
bench-reliability: $(DEV_STAMP)
	HOIDONG_WRITE_RESULTS=1 $(BIN)/pytest -p no:cacheprovider $(RELIABILITY_TESTS)
	$(BIN)/python -m bench.reliability

# Rewrite the README's settings table from server/settings.py.
settings-table: $(RUNTIME_STAMP)
	$(BIN)/python -c "import re, pathlib; from server.settings import markdown_table; \
	p = pathlib.Path('README.md'); s = p.read_text(); \
	p.write_text(re.sub(r'(<!-- settings:start -->\n).*?(<!-- settings:end -->)', \
	lambda m: m.group(1) + markdown_table() + m.group(2), s, flags=re.S))"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache tests/.artifacts
