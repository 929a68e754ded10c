# make run   installs what is needed, collects for 10 s on this host, renders the report
# make test  installs what is needed and runs the whole test suite (the VM tier last)
# make dist  builds dist/snapcollect.pyz, the collector as one file for a host's python3
# make test-pythons  unit tests on the core install of each Python 3.9-3.13 found
# make test-vm  boots Debian 11/12/13 guests under qemu and checks their reports (tests/vm)
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
OUT    := out

.PHONY: run test test-host test-vm vm-host vm-images test-pythons dist deps host venv bench clean

deps: host venv

host:
	./scripts/setup-host.sh

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[report,test]'
	touch $@

venv: $(VENV)/.installed

run: deps
	mkdir -p $(OUT)
	$(VENV)/bin/snapcollect collect --duration 10 -o $(OUT) > $(OUT)/.last
	$(VENV)/bin/snapcollect show "$$(tail -n1 $(OUT)/.last)"
	$(VENV)/bin/snapcollect report "$$(tail -n1 $(OUT)/.last)" -o $(OUT)/report.md --force
	$(VENV)/bin/snapcollect report "$$(tail -n1 $(OUT)/.last)" -o $(OUT)/report.html --force
	$(VENV)/bin/snapcollect report "$$(tail -n1 $(OUT)/.last)" -o $(OUT)/report.pdf --force
	@echo "bundle: $$(tail -n1 $(OUT)/.last)"
	@echo "report: $(OUT)/report.md $(OUT)/report.html $(OUT)/report.pdf"

test: test-host test-vm

test-host: deps
	$(PY) -m pytest -q -rs --ignore=tests/vm

# The VM tier builds its guest images when the cache lacks them
# ($$SNAPCOLLECT_VM_CACHE, default /var/cache/snapcollect-vm).
test-vm: deps vm-host
	$(PY) -m pytest -q -rs tests/vm

vm-host:
	./scripts/setup-host.sh --vm

vm-images: deps vm-host
	for r in bookworm trixie; do $(PY) tests/vm/driver.py build $$r || exit 1; done

test-pythons:
	./scripts/test-pythons.sh

# One file that runs on the host's own python3 (3.9+) with python3-zstandard.
dist:
	$(PYTHON) scripts/build-pyz.py dist/snapcollect.pyz

# Benchmarks write docs/performance.md; they are not part of the test
# suite. perf is only needed for a comparison row of the overhead benchmark.
bench: deps
	@if [ "$$(id -u)" = 0 ] && ! command -v perf >/dev/null; then \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null; fi
	$(PY) benchmarks/write_performance.py

clean:
	rm -rf $(OUT) .pytest_cache dist
