# Two set-up commands: `make run` (demo daemon on http://127.0.0.1:8080) and `make test` (whole suite).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Real Statuspage consumers for tests/test_statuspage_consumers.py; their old pins clash with ours.
CONSUMERS := .venv-consumers/.installed

.PHONY: run test soak bench check-config clean

$(STAMP): setup.cfg pyproject.toml
	@$(PYTHON) -m venv --help >/dev/null 2>&1 && $(PYTHON) -c 'import ensurepip' 2>/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && apt-get install -y --no-install-recommends python3-venv python3-pip; \
	  else echo "need python3-venv: sudo apt-get install python3-venv" >&2; exit 1; fi; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

$(CONSUMERS): tests/consumers/requirements.txt $(STAMP)
	$(PYTHON) -m venv .venv-consumers
	.venv-consumers/bin/python -m pip install -q -r tests/consumers/requirements.txt
	touch $(CONSUMERS)

run: $(STAMP)
	$(BIN)/status-bridge demo

# pytest exits 5 when it collected no tests: that is a failure here, not a pass.
test: $(STAMP) $(CONSUMERS)
	@$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "make test: pytest ran no tests" >&2; exit 1; fi; exit $$rc

# Longer bounded reliability runs (1,000 connections, repeated kill -9); a later -m overrides addopts' "not soak".
soak: $(STAMP) $(CONSUMERS)
	@$(BIN)/python -m pytest -q -p no:cacheprovider -m soak $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "make soak: pytest ran no tests" >&2; exit 1; fi; exit $$rc

# Every benchmark, each printing its ratio to a baseline measured in the same run (bench/README.md).
# Loopback only; each step is capped by `timeout` (about 7 minutes in all on 2 cores). feeds.py and scrape.py need wrk.
BENCH_TIMEOUT ?= 900
bench: $(STAMP)
	timeout $(BENCH_TIMEOUT) $(BIN)/python bench/parse_statusdat.py ../shared/corpus/status-1k.dat.gz
	timeout $(BENCH_TIMEOUT) $(BIN)/python bench/parse_statusdat.py ../shared/corpus/status-100k.dat.gz
	timeout $(BENCH_TIMEOUT) $(BIN)/python bench/e2e_latency.py --sizes 1k 100k
	timeout $(BENCH_TIMEOUT) $(BIN)/python bench/loop_stall.py
	timeout $(BENCH_TIMEOUT) $(BIN)/python bench/feeds.py
	timeout $(BENCH_TIMEOUT) $(BIN)/python bench/scrape.py
	timeout $(BENCH_TIMEOUT) $(BIN)/python bench/feeds_ir.py
	timeout $(BENCH_TIMEOUT) $(BIN)/python bench/memory.py
	timeout $(BENCH_TIMEOUT) $(BIN)/python bench/ingest.py
	timeout $(BENCH_TIMEOUT) $(BIN)/python bench/metrics.py

clean:
	rm -rf $(VENV) .venv-consumers build *.egg-info
