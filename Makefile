# Service accounts for OpenTrace: build, test and lint.
# `make test` is what CI runs (.ci/run); it installs every tool it needs into the project.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
GO ?= go
BIN := $(CURDIR)/.bin
STATICCHECK_VERSION := v0.8.2

# One Lambda per directory under functions/, each built as a static arm64 `bootstrap`.
FUNCTIONS := $(notdir $(patsubst %/,%,$(wildcard functions/*/)))
LAMBDA_ENV := GOOS=linux GOARCH=arm64 CGO_ENABLED=0
LAMBDA_FLAGS := -tags lambda.norpc -trimpath -ldflags='-s -w'

.PHONY: all run test unit moto-test fuzz-smoke fuzz bench lint build tools clean validate sam-build deploy template-check python-tools

all: lint test build

## run: the whole system on 127.0.0.1:3000 (PORT overrides), from template.yaml; Ctrl-C stops.
run:
	$(GO) run ./infra/local -template template.yaml

## test: lint, then every test with the race detector (and the DynamoDB ones again on moto
## server), then a short run of each fuzzer, then the template checks.
test: lint unit moto-test fuzz-smoke template-check

unit: $(BIN)/aws-lambda-rie python-tools
	AWS_LAMBDA_RIE=$(BIN)/aws-lambda-rie SCHEMATHESIS=$(VENV)/bin/schemathesis VENV_PYTHON=$(VENV)/bin/python \
		$(GO) test -race -count=1 -timeout 20m ./...

# A second DynamoDB: the store's, the usage and the audit tests, the end-to-end seed flow and
# `make run` itself, on moto server (started here on a free port, stopped after).
MOTO_PACKAGES := ./pkg/dynamo/... ./pkg/usage ./pkg/audit
moto-test: python-tools
	@port=$$($(VENV)/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'); \
	$(VENV)/bin/moto_server -H 127.0.0.1 -p $$port > $(CURDIR)/.moto.log 2>&1 & pid=$$!; \
	trap "kill $$pid" EXIT; \
	for i in $$(seq 200); do $(VENV)/bin/python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$$port/')" 2>/dev/null && break; sleep 0.1; done; \
	echo "moto server $(MOTO_VERSION) on 127.0.0.1:$$port"; \
	export DYNAMODB_BACKEND=moto MOTO_URL=http://127.0.0.1:$$port; \
	$(GO) test -race -count=1 -timeout 10m $(MOTO_PACKAGES); \
	$(GO) test -race -count=1 -timeout 10m -run '^(TestSeedFlow|TestMakeRunOnMoto|TestOrgDeletedAtTheIdentityProvider)$$' ./pkg/local

# Each fuzz target runs briefly in `make test`, longer under `make fuzz`.
FUZZ_TARGETS := ./pkg/token:FuzzParse ./pkg/authorizer:FuzzParseBearer ./pkg/authorizer:FuzzAuthorizer \
	./pkg/authorizer:FuzzJWT ./pkg/apigw:FuzzDecode ./pkg/apigw:FuzzHandlers ./pkg/dynamo:FuzzCursor \
	./pkg/serviceaccount:FuzzIDChecks
FUZZTIME ?= 10s
fuzz-smoke:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$name ($$pkg) for $(FUZZTIME)"; \
		$(GO) test -run='^$$' -fuzz="^$$name\$$" -fuzztime=$(FUZZTIME) -fuzzminimizetime=200x $$pkg; \
	done

fuzz:
	$(MAKE) fuzz-smoke FUZZTIME=5m

## bench: the performance suite (docs/PERFORMANCE.md): one table of figures, then one line per goal.
bench: $(BIN)/aws-lambda-rie
	$(GO) run ./infra/bench -go $(GO) -rie $(BIN)/aws-lambda-rie

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

# The Lambda Runtime Interface Emulator runs the real bootstrap binaries in tests.
RIE_VERSION := v0.0.0-20261030222936-bef5c4ba774d
$(BIN)/aws-lambda-rie:
	GOBIN=$(BIN) $(GO) install github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@$(RIE_VERSION)

$(BIN)/staticcheck:
	GOBIN=$(BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

## build: a bootstrap per function under build/<function>/, exactly as deployed.
build:
	@for f in $(FUNCTIONS); do \
		echo "build $$f"; \
		$(LAMBDA_ENV) $(GO) build $(LAMBDA_FLAGS) -o build/$$f/bootstrap ./functions/$$f; \
	done

# `sam build` runs `make build-<LogicalId>` (BuildMethod: makefile) with ARTIFACTS_DIR set;
# every function's LogicalId is its directory name, capitalised, followed by "Function".
build-%Function:
	$(LAMBDA_ENV) $(GO) build $(LAMBDA_FLAGS) -o $(ARTIFACTS_DIR)/bootstrap ./functions/$(shell echo '$*' | tr A-Z a-z)
	test -x $(ARTIFACTS_DIR)/bootstrap

## Python tools (sam, cfn-lint), pinned, in a project-local virtualenv.
VENV := $(CURDIR)/.venv
SAM_CLI_VERSION := 1.170.0
CFN_LINT_VERSION := 1.58.0
export SAM_CLI_TELEMETRY := 0
REGION ?= us-east-1

SCHEMATHESIS_VERSION := 4.32.5
MOTO_VERSION := 5.2.5
PY_TOOLS_STAMP := $(VENV)/.installed-$(SAM_CLI_VERSION)-$(CFN_LINT_VERSION)-$(SCHEMATHESIS_VERSION)-$(MOTO_VERSION)

$(PY_TOOLS_STAMP):
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check aws-sam-cli==$(SAM_CLI_VERSION) \
		cfn-lint==$(CFN_LINT_VERSION) schemathesis==$(SCHEMATHESIS_VERSION) 'moto[server]==$(MOTO_VERSION)'
	touch $@

python-tools: $(PY_TOOLS_STAMP)

## validate: lint the template with cfn-lint through SAM (no AWS credentials needed).
validate: python-tools
	$(VENV)/bin/sam validate --lint --region $(REGION) --template template.yaml
	$(VENV)/bin/cfn-lint template.yaml

## sam-build: build every function as SAM deploys it, into .aws-sam/.
sam-build: python-tools
	$(VENV)/bin/sam build --build-in-source --template template.yaml

## template-check: what `make test` runs on the template.
template-check: validate sam-build

## deploy: build and deploy with samconfig.toml (ENV=dev or ENV=prod).
ENV ?= dev
deploy: sam-build
	$(VENV)/bin/sam deploy --config-env $(ENV)

clean:
	rm -rf build .aws-sam
