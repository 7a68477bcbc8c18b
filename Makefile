# Two commands that work on a fresh Debian/Ubuntu machine: `make demo` and `make test`.
# They install what they need: Debian's Go and govmomi source (for labsim), ipmitool (the
# IPMI cross-check), OpenSSH's sshd (a plain server's SSH), shellcheck and systemd-analyze (the deploy script and schedule units), NUT's
# upsd, dummy-ups and upsc (the UPS peer), mosquitto and its clients (the MQTT peer), chromium (the
# page's browser tests, driven by Playwright without its own browser download), and the
# Python package with its dev tools in a venv (.venv).

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
LABSIM := labsim/bin/labsim
VCSIM := labsim/bin/vcsim
GOVMOMI := /usr/share/gocode/src/github.com/vmware/govmomi
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps venv labsim test lint typecheck unit demo demo-proxmox bench docs screenshots clean

all: test

# Debian packages, installed only when missing.
deps:
	@missing=""; \
	command -v go >/dev/null || missing="$$missing golang-go"; \
	[ -d $(GOVMOMI)/simulator ] || missing="$$missing golang-github-vmware-govmomi-dev"; \
	command -v ipmitool >/dev/null || missing="$$missing ipmitool"; \
	command -v shellcheck >/dev/null || missing="$$missing shellcheck"; \
	[ -x /usr/sbin/sshd ] || missing="$$missing openssh-server"; \
	command -v curl >/dev/null || missing="$$missing curl"; \
	command -v systemd-analyze >/dev/null || missing="$$missing systemd"; \
	[ -x /lib/nut/dummy-ups ] || missing="$$missing nut-server"; \
	command -v upsc >/dev/null || missing="$$missing nut-client"; \
	command -v mosquitto >/dev/null || missing="$$missing mosquitto"; \
	command -v mosquitto_sub >/dev/null || missing="$$missing mosquitto-clients"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

venv: deps $(VENV)/.installed

$(LABSIM): deps $(wildcard labsim/*.go)
	cd labsim && GOPATH=/usr/share/gocode GO111MODULE=off go build -o bin/labsim .

# govmomi's simulator as the library ships it: the second vCenter of the tests (labsim/vcsim/main.go).
$(VCSIM): deps labsim/vcsim/main.go
	cd labsim/vcsim && GOPATH=/usr/share/gocode GO111MODULE=off go build -o ../bin/vcsim .

labsim: $(LABSIM) $(VCSIM)

lint: venv deps
	@out=$$(gofmt -l labsim); [ -z "$$out" ] || { echo "gofmt: not formatted: $$out (run gofmt -w labsim)"; exit 1; }
	cd labsim && GOPATH=/usr/share/gocode GO111MODULE=off go vet . ./vcsim
	$(VENV)/bin/ruff check src tests bench scripts
	$(VENV)/bin/ruff format --check src tests bench scripts
	shellcheck deploy/*.sh scripts/*.sh
	$(VENV)/bin/hadolint Dockerfile

typecheck: venv
	$(VENV)/bin/mypy

# Two workers, a test file each (--dist loadfile: a file's labs and servers stay on one worker): most of a test's
# time is spent waiting on the lab, so two halve the wall time on two cores. PYTEST_WORKERS=0 runs them one by one.
PYTEST_WORKERS ?= 2
test: venv labsim lint typecheck
	LABSIM_BIN=$(abspath $(LABSIM)) $(VENV)/bin/pytest -q -n $(PYTEST_WORKERS) --dist loadfile

demo: venv labsim
	LABSIM_BIN=$(abspath $(LABSIM)) PATH=$(abspath $(VENV))/bin:$$PATH ./scripts/demo.sh

# The same against a Proxmox VE cluster (labsim --proxmox: 3 nodes, HA, Ceph).
demo-proxmox: venv labsim
	LABSIM_BIN=$(abspath $(LABSIM)) PATH=$(abspath $(VENV))/bin:$$PATH ./scripts/demo-proxmox.sh

# The documentation site (docs/, mkdocs.yml) into site/; make test builds it too, with --strict.
docs: venv
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

# The page's pictures in the README and docs/, from a real run against labsim.
screenshots: venv labsim
	$(PY) scripts/screenshots.py

bench: venv labsim
	LABSIM_BIN=$(abspath $(LABSIM)) $(PY) bench/run.py

clean:
	rm -rf $(VENV) labsim/bin .mypy_cache .ruff_cache .pytest_cache .demo .demo-proxmox site
