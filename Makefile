# DeviceSync Hub: every target sets itself up from scratch (virtualenv, packages, test broker).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO_DURATION ?= 30
DEMO_OUT ?= demo-out
TEST_WORKERS ?= 4   # xdist workers: many tests wait on peers/outages, so more than the 2 cores
LOCK   := requirements.lock   # the pinned versions the tests ran with (pip constraints)

.PHONY: demo demo-kafka test install install-test bench soak faults fuzz clean rules-check audit lock

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml $(LOCK) | $(BIN)/python
	$(BIN)/pip install -q -c $(LOCK) -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(LOCK) $(VENV)/.installed
	$(BIN)/pip install -q -c $(LOCK) -e '.[test]'
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

demo: install
	$(BIN)/devsync demo --rules rules --duration $(DEMO_DURATION) --out $(DEMO_OUT)

demo-kafka: install-test
	$(BIN)/python -c "import subprocess, sys; from hub.testing.broker import start_broker; \
	b = start_broker(); r = subprocess.call([sys.executable, '-m', 'hub.cli', 'demo', '--bootstrap', b.bootstrap, \
	'--duration', '$(DEMO_DURATION)', '--out', '$(DEMO_OUT)-kafka']); b.stop(); sys.exit(r)"

audit: install-test    # known vulnerabilities in the locked dependencies (asks the PyPI/OSV advisory service)
	$(BIN)/pip-audit -r $(LOCK) --no-deps --disable-pip --progress-spinner off

lock: install-test     # re-pin requirements.lock to what the test environment has now
	{ sed -n '1,2p' $(LOCK); $(BIN)/pip freeze --exclude-editable | grep -v -i -E '^(atheris|py-spy)=='; } > $(LOCK).new
	mv $(LOCK).new $(LOCK)

rules-check: install
	$(BIN)/devsync rules check rules

test: install-test
	bash scripts/ensure-services.sh
	bash scripts/install-test-peers.sh
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

bench: install-test
	$(BIN)/python -m hub.bench.report --out bench

soak: install-test
	bash scripts/soak.sh $(or $(DURATION),300)

faults: install-test   # the fault-injection scenarios alone, with their counts printed
	bash scripts/ensure-services.sh
	rm -f $(or $(DEVSYNC_FAULT_REPORT),/tmp/faults-report.jsonl)
	$(BIN)/python -m pytest -q -m faults -n 2 --dist loadfile; status=$$?; \
	$(BIN)/python tests/faults/fault_report.py; exit $$status

fuzz: install-test     # nightly-style: 100,000 atheris inputs per target (FUZZ_INPUTS to change)
	$(BIN)/pip install -q atheris
	bash scripts/fuzz-nightly.sh $(or $(FUZZ_INPUTS),100000) fuzz-out

clean:
	rm -rf $(VENV) $(DEMO_OUT) *.egg-info
