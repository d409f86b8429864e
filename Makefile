# The platform's two daily commands are `make run` and `make test`; every other target is a step
# of them. Each target installs what it needs when it is missing, and nothing when it is there.
SHELL := /bin/bash
.DEFAULT_GOAL := help

BIN          := node_modules/.bin
BUF          := $(BIN)/buf
NPM_STAMP    := node_modules/.package-lock.json
VENDOR_STAMP := proto-vendor/VERSION
BASELINE     := contracts/released.json
# Where the workspace checked by `make breaking` lives; tests point it at a changed copy.
CONTRACTS_DIR ?= .
VITEST_FLAGS ?=
BROWSER_VITEST_FLAGS ?=

.PHONY: help run test bench chaos build console deps nats h2load chromium test-browser lint breaking gen manifests gen-check typecheck vitest release-contracts clean

help: ## List the targets.
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 20

# run and chaos run under node itself (not tsx's CLI, which relays signals to its child and may
# repeat a Ctrl-C on a loaded machine): one Ctrl-C is one graceful stop. `make run` starts its
# supervisor compiled (`make build` made .build/scripts/run.js current just before).
run: deps nats build ## Start nats-server and every service; Ctrl-C stops them all.
	@node --enable-source-maps .build/scripts/run.js

# The contract checks and the type check use one core each for a few seconds; they run beside the
# vitest tiers instead of before them (each prints its own one-line verdict; any failure fails the
# target).
test: deps nats ## Everything CI checks: lint, breaking, gen-check, typecheck and the vitest suite.
	@$(MAKE) --no-print-directory -j5 lint breaking gen-check typecheck vitest

bench: deps nats h2load build ## The performance report (loopback only, bounded): one table + bench/results.json; fails only on request errors.
	@node --import tsx bench/run.ts

chaos: deps nats build ## Fault run on loopback: requests through the gateway while every part is SIGKILLed once; fails on stuck, missing or duplicated deliveries.
	@node --import tsx scripts/chaos.ts

# scripts/build.mjs keeps its own stamp (.build/manifest.json: every source of every bundle) and
# compiles only when one changed; the services run compiled JavaScript once it is current.
build: deps ## Compile the services and the gateway to JavaScript in .build/, and bundle the web console (when a source changed).
	@node scripts/build.mjs

console: deps ## Bundle the web console into .build/console/ (when a source changed); make build does it too.
	@node scripts/build-console.mjs

deps: $(NPM_STAMP) $(VENDOR_STAMP) ## Install npm packages and the third-party protos.

# npm writes node_modules/.package-lock.json on every install, so it doubles as the stamp.
$(NPM_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(VENDOR_STAMP): $(NPM_STAMP) scripts/vendor-protos.mjs scripts/proto-from-descriptor.mjs
	@node scripts/vendor-protos.mjs

nats: ## Install nats-server (Debian package) when it is missing.
	@bash scripts/ensure-nats-server.sh

h2load: ## Install h2load (Debian package nghttp2-client), the benchmarks' HTTP load generator, when it is missing.
	@bash scripts/ensure-h2load.sh

chromium: ## Install Chromium (Debian package chromium), the browser the browser tests drive, when it is missing.
	@bash scripts/ensure-chromium.sh

lint: deps ## buf lint the contracts.
	@$(BUF) lint && echo "buf lint: clean"

breaking: deps ## Fail on a breaking change against the released contracts.
	@cd $(CONTRACTS_DIR) && $(CURDIR)/$(BUF) breaking proto --against $(BASELINE) --exclude-imports \
		&& echo "buf breaking: no breaking change against $(BASELINE)"

gen: deps ## Regenerate gen/ from proto/.
	@$(BUF) generate && echo "buf generate: gen/ written"

manifests: deps ## Rewrite the Kubernetes manifests that follow from the service registry (deploy/kubernetes).
	@node --import tsx scripts/kubernetes-manifests.ts

gen-check: deps ## Fail when gen/ does not match proto/.
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	$(BUF) generate -o "$$tmp" && \
	if diff -r gen "$$tmp/gen" >"$$tmp/diff"; then echo "gen-check: gen/ is current"; \
	else head -50 "$$tmp/diff"; echo "gen-check: gen/ is stale; run 'make gen' and commit gen/"; exit 1; fi

# Incremental: tsc keeps what it learnt in .make/ and checks again only what changed since.
typecheck: deps ## tsc --noEmit, strict (the platform, then the web console's browser code).
	@$(BIN)/tsc -p tsconfig.json --noEmit --incremental --tsBuildInfoFile .make/tsc-platform.tsbuildinfo \
		&& $(BIN)/tsc -p console/tsconfig.json --noEmit --incremental --tsBuildInfoFile .make/tsc-console.tsbuildinfo \
		&& echo "typecheck: clean"

# Two tiers at once (vitest.config.ts): the fast one, and the slow fault tests that start whole
# platforms as processes, each with its own workers; VITEST_FLAGS go to both, and a file reporter
# (--reporter=json --outputFile.json=<file>) gets one report of both (scripts/vitest-tiers.mjs).
# The services a test starts as processes run compiled (make build) rather than through tsx.
vitest: deps nats build ## The vitest suite (real nats-server, real gRPC over loopback), its two tiers in parallel.
	@node scripts/vitest-tiers.mjs $(VITEST_FLAGS)

# The browser tier: the whole platform as `make run` starts it, on private ports and a temporary
# RUN_DIR, and Debian's Chromium (driven by playwright-core) using the web console; loopback only.
# A screenshot of the console goes to test-results/console.png.
test-browser: deps nats chromium build ## The browser tests of the web console (headless Chromium against the running platform).
	@$(BIN)/vitest run --config test/browser/vitest.config.ts $(BROWSER_VITEST_FLAGS)

release-contracts: deps lint ## Release the current contracts: rewrite the breaking-change baseline.
	@$(BUF) build proto --exclude-source-info -o $(BASELINE) \
		&& echo "released: $(BASELINE) now holds every file under proto/; commit it"

clean: ## Remove installed and generated local state (not gen/).
	rm -rf node_modules proto-vendor .run .make .build
