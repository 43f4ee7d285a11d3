# Service accounts for OpenTrace: build, test and lint.
# `make test` is what CI runs (.ci/run); it installs every tool it needs into the project.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
GO ?= go
BIN := $(CURDIR)/.bin
STATICCHECK_VERSION := v0.8.2

# One Lambda per directory under functions/, each built as a static arm64 `bootstrap`.
FUNCTIONS := $(notdir $(wildcard functions/*))
LAMBDA_ENV := GOOS=linux GOARCH=arm64 CGO_ENABLED=0
LAMBDA_FLAGS := -tags lambda.norpc -trimpath -ldflags='-s -w'

.PHONY: all test unit fuzz-smoke fuzz bench lint build tools clean

all: lint test build

## test: lint, then every test with the race detector, then a short run of each fuzzer.
test: lint unit fuzz-smoke

unit:
	$(GO) test -race -count=1 ./...

# Each fuzz target runs briefly in `make test`, longer under `make fuzz`.
FUZZ_TARGETS := ./pkg/token:FuzzParse
FUZZTIME ?= 10s
fuzz-smoke:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$name ($$pkg) for $(FUZZTIME)"; \
		$(GO) test -run='^$$' -fuzz="^$$name\$$" -fuzztime=$(FUZZTIME) $$pkg; \
	done

fuzz:
	$(MAKE) fuzz-smoke FUZZTIME=5m

## bench: the benchmark suite.
bench:
	$(GO) test -run='^$$' -bench=. -benchmem ./...

## lint: gofmt, go vet, staticcheck, and go.mod/go.sum tidy.
lint: $(BIN)/staticcheck
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(BIN)/staticcheck ./...
	@cp go.mod go.mod.bak; cp go.sum go.sum.bak; \
	$(GO) mod tidy; \
	if ! cmp -s go.mod go.mod.bak || ! cmp -s go.sum go.sum.bak; then \
		diff -u go.mod.bak go.mod || true; mv go.mod.bak go.mod; mv go.sum.bak go.sum; \
		echo "go mod tidy changes go.mod/go.sum"; exit 1; \
	fi; rm -f go.mod.bak go.sum.bak

$(BIN)/staticcheck:
	GOBIN=$(BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

## build: a bootstrap per function under build/<function>/, exactly as deployed.
build:
	@for f in $(FUNCTIONS); do \
		echo "build $$f"; \
		$(LAMBDA_ENV) $(GO) build $(LAMBDA_FLAGS) -o build/$$f/bootstrap ./functions/$$f; \
	done

clean:
	rm -rf build .aws-sam
