# Custos — the two quick-start commands are `make run` and `make test`; both install what they need.
SWIFT      ?= swift
CUSTOS     := .build/debug/custos
# System packages the build needs (Debian names).
BUILD_PACKAGES := libssl-dev libvirt-dev libsqlite3-dev pkg-config
# Extra system packages the test suites need (peers and tools used as oracles).
TEST_PACKAGES  := sqlite3 sbsigntool pesign python3-pefile python3-venv cpio binutils openssl mtools dosfstools ovmf qemu-system-x86 util-linux coreutils libvirt-clients libxml2-utils libvirt-clients-qemu python3-libvirt python3-lxml python3-cryptography libvirt-daemon libvirt-daemon-driver-qemu chromium chromium-driver
export CUSTOS_TESTDATA ?= $(abspath ../shared/testdata)

.PHONY: run test bench build deps test-deps certs lint clean fuzz fuzz-smoke api-fuzz

# Dependencies are pinned (Package.resolved is committed): every build fails if the manifest and the pins disagree.
RESOLVED := --force-resolved-versions
# `make fuzz FUZZ_SECONDS=…` runs every libFuzzer harness for that long (one at a time); `make test` runs each for a
# 10 s smoke. See README "Fuzzing".
FUZZ_SECONDS ?= 60

# Installs missing Debian packages when run as root; otherwise names them and stops.
define apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	  else echo "missing Debian packages:$$missing — install them (or run make as root)"; exit 1; fi; \
	fi
endef

deps:
	$(call apt_install,$(BUILD_PACKAGES))

test-deps: deps
	$(call apt_install,$(TEST_PACKAGES))

build: deps
	$(SWIFT) build $(RESOLVED)

# Installs the pinned trust anchors from the offline mirror ($$CUSTOS_TESTDATA); every file is checked against its pin.
certs: build
	$(CUSTOS) certs install

# Starts the attestation service with the embedded defaults (127.0.0.1:8080, state in ./var/).
run: certs
	@echo "custos serve: http://127.0.0.1:8080 — first start writes the admin token to var/bootstrap-admin.token (0600)"
	@echo "try: curl -s -X POST localhost:8080/v1/tenants -H \"Authorization: Bearer \$$(cat var/bootstrap-admin.token)\" -d '{\"id\":\"acme\"}'"
	$(CUSTOS) serve

# swift-format ships with the toolchain; .swift-format holds the project's settings.
lint:
	$(SWIFT) format lint --strict -r Sources Tests Package.swift

# CUSTOS_REQUIRE_ALL=1: a test whose peer, data or privilege is missing fails instead of skipping (README "Tests").
test: test-deps lint
	$(SWIFT) build --build-tests $(RESOLVED)
	$(CUSTOS) certs install
	# Two runs: the service's suites (in-process HTTP servers whose clients time out after 20 s) apart from the
	# rest, whose synchronous tests (CPU-bound loops, CLI and peer subprocesses waited on) can hold both threads of
	# Swift's cooperative pool on this 2-core machine for minutes and starve the servers' request handlers.
	CUSTOS_REQUIRE_ALL=1 $(SWIFT) test --skip-build --filter CustosServerTests
	CUSTOS_REQUIRE_ALL=1 $(SWIFT) test --skip-build --skip CustosServerTests
	$(MAKE) api-fuzz
	$(MAKE) fuzz-smoke

# Fuzzes the HTTP API from openapi.yaml with schemathesis (PyPI, in a git-ignored venv) against a fresh
# `custos serve`: no 5xx, every status, content type and body as documented (README "The service").
api-fuzz: test-deps certs
	scripts/api-fuzz.sh $(CUSTOS)

# The libFuzzer harnesses (Fuzz/, a separate package built with -sanitize=fuzzer,address into .build-fuzz/).
fuzz: deps
	scripts/fuzz/run.sh $(FUZZ_SECONDS)

fuzz-smoke: deps
	scripts/fuzz/run.sh --smoke

# Benchmarks run on a release build with the real vendor data; figures go to stdout (add JSON=--json for JSON).
# The release binary links the Swift runtime and Foundation statically (--static-swift-stdlib), as it is shipped:
# it halves process start-up (no dynamic symbol binding of libswiftCore/Foundation), which the whole-process SEV
# goal of issue 4 depends on. scripts/sev/bench-measure.sh builds with the same flags (a different flag set would
# rebuild .build/release from scratch).
BENCH := .build/release/custos
TD    := $(CUSTOS_TESTDATA)
BENCH_PACKAGES := hyperfine libvirt-clients-qemu python3-libvirt python3-lxml python3-cryptography
bench: deps
	$(call apt_install,$(BENCH_PACKAGES))
	$(SWIFT) build -c release --static-swift-stdlib --product custos $(RESOLVED)
	$(BENCH) certs install
	$(BENCH) bench tdx-verify --quote $(TD)/tdx/quotes/q01_dcapqvl_tdx_v4.bin \
	  --collateral $(TD)/tdx/collateral/c1_dcapqvl_2025-06_B0C06F --at 2025-07-01T00:00:00Z --iterations 2000 $(JSON)
	$(BENCH) bench tdx-verify --quote $(TD)/tdx/quotes/q01_dcapqvl_tdx_v4.bin \
	  --collateral $(TD)/tdx/collateral/c1_dcapqvl_2025-06_B0C06F --at 2025-07-01T00:00:00Z --iterations 200 --cold $(JSON)
	@echo "Custos warm/cold vs dcap-qvl 0.7.0 (peer, cold by construction), interleaved, medians of 5 rounds:"
	python3 scripts/tdx/compare.py $(BENCH) $$(scripts/tdx/setup-venv.sh) $(TD)/tdx/quotes/q01_dcapqvl_tdx_v4.bin \
	  $(TD)/tdx/collateral/c1_dcapqvl_2025-06_B0C06F 2025-07-01T00:00:00Z 1751328000 5
	$(BENCH) bench sev-measure --vcpus 4 --iterations 50 $(JSON)
	scripts/sev/bench-measure.sh --no-build
	$(SWIFT) build -c release --static-swift-stdlib --product custos-bench $(RESOLVED)
	.build/release/custos-bench kbs --concurrency 64 --duration 20 --custos $(BENCH) $(JSON)
	@echo "The floor of a KBS flow: the server's CPU per request that does nothing (GET /healthz; a flow is three) and per durable audit append (a flow makes two):"
	.build/release/custos-bench http --concurrency 64 --duration 10 --custos $(BENCH) $(JSON)
	rm -rf .build/bench-audit && mkdir -p .build/bench-audit
	$(BENCH) bench audit-append --db .build/bench-audit/custos.sqlite --entries 100000 --concurrency 64 $(JSON)

clean:
	rm -rf .build .build-fuzz
