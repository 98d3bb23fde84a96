# edgepose — the two commands: `make demo` and `make test`. Both install what is missing first.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.edgepose-installed

.PHONY: install demo test bench soak fresh-check clean help

help:
	@echo "make demo    install, then run edgepose on a sample video and show the MQTT messages"
	@echo "make test    install, then run the whole test suite"
	@echo "make bench   run the benchmarks in benchmarks/ (not part of the tests)"
	@echo "make soak    10 minutes on the sample video against a local broker, memory growth reported"
	@echo "make install install system packages (Debian) and the .venv only"
	@echo "make fresh-check  run demo and test in a clean Debian root (debootstrap + chroot; root, minutes)"

install: $(STAMP)

$(STAMP): pyproject.toml deploy/install.sh
	deploy/install.sh --venv $(VENV)
	@touch $@

demo: install
	$(PY) -m edgepose.demo

test: install
	OPENVINO_TELEMETRY=0 $(VENV)/bin/pytest -q -ra

bench: install
	@for b in benchmarks/*.py; do case $$b in */soak.py|*/faultsoak.py|*/common.py) continue ;; esac; echo "== $$b"; $(PY) $$b || exit 1; done

soak: install
	$(PY) benchmarks/soak.py --minutes 10
	$(PY) benchmarks/faultsoak.py --minutes 10

# Not part of CI: debootstraps a clean Debian bookworm and runs `make demo` and `make test` in it (needs root).
fresh-check:
	deploy/fresh-check.sh --log fresh-check.log

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
