# uvr — the two commands of the README are `make run` and `make test`.
# Everything they need is installed and started by deploy/services.

SHELL := /bin/bash
GO ?= go
BIN := bin/uvr
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
# Test packages run two at a time on the 2-core machines this project targets. cmd/uvr, the
# end-to-end package, takes 10-20 minutes there; the timeout is a ceiling for a slow machine
# (a CI run was cut at 25 minutes), not the budget: `make test` stays near 30 minutes.
GOTEST_FLAGS ?= -count=1 -p 2 -timeout 40m

.PHONY: build run test check-fixtures lint unit services-up services-down bench clean web web-test

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/uvr

## run: the product on one machine — local ClickHouse, local Apache Kafka (KRaft, data on
## disk under var/kafka, bounded heap), demo data.
# The admin to log in as (README); override either on the command line.
UVR_ADMIN_EMAIL ?= admin@uvr.local
UVR_ADMIN_PASSWORD ?= uvr-demo
# The usual local origins of a web client in development (a Next.js or Vite
# server on 3000-3002) may call the API from the browser; elsewhere only the
# origins you configure.
UVR_CORS_ORIGINS ?= http://localhost:3000,http://localhost:3001,http://localhost:3002,http://127.0.0.1:3000,http://127.0.0.1:3001,http://127.0.0.1:3002
run: web
	$(MAKE) build
	deploy/services clickhouse start
	deploy/services kafka start
	eval "$$(deploy/services clickhouse env)" && eval "$$(deploy/services kafka env)" && \
	  UVR_ADMIN_EMAIL='$(UVR_ADMIN_EMAIL)' UVR_ADMIN_PASSWORD='$(UVR_ADMIN_PASSWORD)' UVR_CORS_ORIGINS='$(UVR_CORS_ORIGINS)' $(BIN) run --demo

## test: start the real services (ClickHouse, Kafka, Prometheus, Vault), then every test.
test: check-fixtures lint services-up web-test
	eval "$$(deploy/services all env)" && eval "$$(deploy/vault env)" && $(GO) test $(GOTEST_FLAGS) ./...

## web: the dashboard (dashboards/web) built into dashboards/web/dist/app, which
## the Go binary embeds; without it uvr serves a page saying to run this.
WEB := dashboards/web
WEB_SRC := $(shell find $(WEB)/src $(WEB)/public -type f 2>/dev/null) $(addprefix $(WEB)/,index.html vite.config.ts tsconfig.json package-lock.json)
web: $(WEB)/dist/app/index.html

# Rebuilt only when a source changed: `make run` stays quick.
$(WEB)/dist/app/index.html: $(WEB)/node_modules/.package-lock.json $(WEB_SRC)
	cd $(WEB) && npm run build

# npm ci (from the lockfile, no prompts) when node_modules is missing or older
# than package-lock.json: npm writes node_modules/.package-lock.json last.
$(WEB)/node_modules/.package-lock.json: $(WEB)/package-lock.json
	@command -v node >/dev/null && command -v npm >/dev/null || { echo "make web: Node.js 20+ with npm is needed to build the dashboard and was not found: install it (apt-get install nodejs npm, or https://nodejs.org)"; exit 1; }
	@node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)' || { echo "make web: Node.js 20+ is needed, found $$(node --version): upgrade it (https://nodejs.org)"; exit 1; }
	cd $(WEB) && npm ci --no-audit --no-fund

## web-test: Vitest unit tests, then the browser end-to-end test against a real
## `uvr run --demo` in headless Chromium (Debian's, installed when missing).
web-test: web
	$(MAKE) build
	cd $(WEB) && npm test
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	deploy/services clickhouse start
	eval "$$(deploy/services clickhouse env)" && cd $(WEB) && UVR_BIN=$(CURDIR)/$(BIN) npm run e2e

## check-fixtures: no tracked file reads or cites test data from outside the repository.
check-fixtures:
	.ci/check-fixtures

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...

services-up:
	deploy/services all start
	deploy/vault start

services-down:
	deploy/vault stop
	deploy/services all stop

## bench: end-to-end ingest throughput against the local services.
bench: build services-up
	eval "$$(deploy/services all env)" && $(BIN) bench ingest --events 200000

## fuzz: every Fuzz target of the repository, one after another, each for
## FUZZTIME; a crash is saved under the package's testdata/fuzz/ (README, Fuzzing).
FUZZTIME ?= 20s
# New interesting inputs are minimized for up to 60 s by default: too long for short runs.
FUZZMINIMIZETIME ?= 2s
.PHONY: fuzz
fuzz:
	@failed=""; for file in $$(git grep -l '^func Fuzz' -- '*_test.go'); do \
	  for name in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$file); do \
	    echo "== $$name ./$$(dirname $$file) for $(FUZZTIME)"; \
	    $(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) ./$$(dirname $$file) || failed="$$failed $$name"; \
	  done; done; \
	if [ -n "$$failed" ]; then echo "fuzz: failed:$$failed"; exit 1; fi; echo "fuzz: every target passed"

clean:
	rm -rf bin
