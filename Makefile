# uvr — the two commands of the README are `make run` and `make test`.
# Everything they need is installed and started by deploy/services.

SHELL := /bin/bash
GO ?= go
BIN := bin/uvr
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
# Test packages run two at a time on the 2-core machines this project targets.
GOTEST_FLAGS ?= -count=1 -p 2 -timeout 25m

.PHONY: build run test lint unit services-up services-down bench clean

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/uvr

## run: the product on one machine — local ClickHouse, embedded Kafka broker, demo data.
run: build
	deploy/services clickhouse start
	$(BIN) run --demo

## test: start the real services (ClickHouse, Kafka, Prometheus, Vault), then every test.
test: lint services-up
	eval "$$(deploy/services all env)" && eval "$$(deploy/vault env)" && $(GO) test $(GOTEST_FLAGS) ./...

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

clean:
	rm -rf bin
