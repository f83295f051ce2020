# jobforge — `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

GO        ?= go
# go.mod's toolchain line names the patched Go release to build with; "auto"
# lets the go command fetch it through the module proxy when the local Go is
# older (a machine's go.env may say "local").
GOTOOLCHAIN ?= auto
export GOTOOLCHAIN
BIN       := $(CURDIR)/bin
# -pgo=off: tests need not pay for building with cmd/*/default.pgo (see
# `make pgo`); only what is shipped and benchmarked is built with it.
GOTESTFLAGS ?= -race -count=1 -timeout 15m -pgo=off

# Pinned code generation tools (see scripts/gen-proto.sh).
PROTOC_GEN_GO_VERSION       := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION  := v1.6.0
GRPC_GATEWAY_VERSION        := v2.33.0
PROTOVALIDATE_VERSION       := v1.2.2
# buf lint / buf breaking (scripts/buf.sh, buf.yaml).
BUF_VERSION                 := v1.75.0
# grpcurl for the documented examples (test/docs runs them).
GRPCURL_VERSION             := v1.9.3

# System packages the tests and code generation need (Debian names).
APT_PACKAGES := redis-server protobuf-compiler chromium

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_.-]+:.*## / {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: run
run: ## Run the whole system in one process: API + in-process worker (embedded store unless REDIS_URL is set).
	$(GO) run ./cmd/jobforge-dev

.PHONY: build
build: ## Build bin/api, bin/worker, bin/jobforge-dev, bin/jobctl (profile-guided: see `make pgo`).
	CGO_ENABLED=0 $(GO) build -trimpath -pgo=$(PGO_PROFILE) -o $(BIN)/ ./cmd/api ./cmd/worker ./cmd/jobforge-dev ./cmd/jobctl

.PHONY: deps
deps: ## Install the system packages tests need (redis-server, protoc, chromium, Python gRPC) when missing.
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v protoc >/dev/null || missing="$$missing protobuf-compiler"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	/usr/bin/python3 -c 'import grpc, grpc_tools' 2>/dev/null || missing="$$missing python3-grpcio python3-grpc-tools"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "missing:$$missing — install them (Debian: apt-get install$$missing)"; exit 1; \
	  fi; \
	fi

.PHONY: tools
tools: ## Install the pinned protoc plugins into bin/.
	@mkdir -p $(BIN)
	@test -x $(BIN)/protoc-gen-go && $(BIN)/protoc-gen-go --version | grep -q $(PROTOC_GEN_GO_VERSION) || \
	  GOBIN=$(BIN) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	@test -x $(BIN)/protoc-gen-go-grpc && $(BIN)/protoc-gen-go-grpc --version | grep -q $(PROTOC_GEN_GO_GRPC_VERSION:v%=%) || \
	  GOBIN=$(BIN) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	@test -x $(BIN)/protoc-gen-grpc-gateway && $(BIN)/protoc-gen-grpc-gateway --version | grep -q $(GRPC_GATEWAY_VERSION:v%=%) || \
	  GOBIN=$(BIN) $(GO) install github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway@$(GRPC_GATEWAY_VERSION)
	@test -x $(BIN)/protoc-gen-openapiv2 && $(BIN)/protoc-gen-openapiv2 --version | grep -q $(GRPC_GATEWAY_VERSION:v%=%) || \
	  GOBIN=$(BIN) $(GO) install github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2@$(GRPC_GATEWAY_VERSION)

.PHONY: tools-buf
tools-buf: ## Install the pinned buf into bin/.
	@mkdir -p $(BIN)
	@test -x $(BIN)/buf && $(BIN)/buf --version | grep -qx $(BUF_VERSION:v%=%) || \
	  GOBIN=$(BIN) $(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)

.PHONY: tools-grpcurl
tools-grpcurl: ## Install the pinned grpcurl into bin/grpcurl-<version>/ (test/docs runs the documented grpcurl examples with it).
	@test -x $(BIN)/grpcurl-$(GRPCURL_VERSION)/grpcurl || \
	  GOBIN=$(BIN)/grpcurl-$(GRPCURL_VERSION) $(GO) install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)

.PHONY: lint-proto
lint-proto: deps tools-buf tools/node_modules/.package-lock.json ## buf lint api/proto (STANDARD; exceptions justified in buf.yaml).
	PROTOVALIDATE_VERSION=$(PROTOVALIDATE_VERSION) ./scripts/buf.sh lint

.PHONY: breaking
breaking: deps tools-buf tools/node_modules/.package-lock.json ## buf breaking: api/proto against main's merge-base, or on main against the previous commit (AGAINST=<ref> to choose; see scripts/buf.sh).
	PROTOVALIDATE_VERSION=$(PROTOVALIDATE_VERSION) ./scripts/buf.sh breaking $(AGAINST)

.PHONY: proto
proto: deps tools ## Regenerate Go, gRPC, gateway and OpenAPI code from api/proto.
	@rm -rf api/gen/jobforge api/gen/openapi
	PROTOVALIDATE_VERSION=$(PROTOVALIDATE_VERSION) ./scripts/gen-proto.sh $(CURDIR)/api/gen

.PHONY: check-generated
check-generated: deps tools ## Fail if committed generated code differs from a fresh `make proto`.
	@tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	PROTOVALIDATE_VERSION=$(PROTOVALIDATE_VERSION) ./scripts/gen-proto.sh $$tmp >/dev/null && \
	if ! diff -r -u api/gen/jobforge $$tmp/jobforge || ! diff -r -u api/gen/openapi $$tmp/openapi; then \
	  echo "generated code is stale: run 'make proto' and commit the result"; exit 1; \
	else echo "generated code is up to date"; fi

.PHONY: test
test: deps tools-grpcurl check-generated lint-openapi lint-proto breaking ## Run the whole suite: unit, integration, system and browser tests (real redis-server, headless chromium), with -race; then test-k8s.
	$(GO) vet ./...
	$(GO) test $(GOTESTFLAGS) ./...
	$(MAKE) test-k8s

# deploy/k8s is a Go module of its own (see deploy/k8s/README.md): the
# kustomize API and the Kubernetes and KEDA types stay out of the programs'
# dependency graph. Its test renders in memory and runs no process, so it
# skips -race (which would only slow the build of those packages).
K8S_DIR := deploy/k8s

.PHONY: test-k8s
test-k8s: ## The manifests test: render every overlay of deploy/k8s with the kustomize API and check it (its own Go module).
	cd $(K8S_DIR) && $(GO) vet ./... && $(GO) test -count=1 -timeout 10m ./...

OVERLAY ?= dev

.PHONY: k8s
k8s: ## Render deploy/k8s/overlays/OVERLAY (default dev) with IMAGE=name:tag or name@sha256:… into out/k8s/OVERLAY.yaml.
	@test -n "$(IMAGE)" || { echo "usage: make k8s IMAGE=<name:tag or name@sha256:digest> [OVERLAY=dev|production|production-sentinel|production-cluster]"; exit 2; }
	cd $(K8S_DIR) && $(GO) run ./cmd/render -overlay '$(OVERLAY)' -image '$(IMAGE)' -out $(CURDIR)/out/k8s/$(OVERLAY).yaml

.PHONY: test-faults
test-faults: ## Fault tests: real binaries, real redis-server with AOF, killed and restarted under load (~8 min)
	@command -v redis-server >/dev/null || $(MAKE) deps
	$(GO) vet -tags faults ./test/faults/
	$(GO) test -tags faults -race -count=1 -timeout 12m -pgo=off -v ./test/faults/

.PHONY: test-browser
test-browser: deps ## Only the browser test: /docs and /monitoring in headless Chromium; screenshots in out/browser (or $$ARTIFACTS_DIR).
	$(GO) test -count=1 -timeout 5m -v ./test/browser/

# The pinned Node tools (tools/package.json), installed when the lockfile changes.
tools/node_modules/.package-lock.json: tools/package.json tools/package-lock.json
	npm ci --prefix tools --no-audit --no-fund --loglevel=error

.PHONY: lint-openapi
lint-openapi: tools/node_modules/.package-lock.json ## Lint the generated OpenAPI document with Redocly CLI (tools/redocly.yaml).
	REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true \
	  tools/node_modules/.bin/redocly lint --config tools/redocly.yaml --format stylish api/gen/openapi/jobforge.swagger.json

.PHONY: test-short
test-short: ## Unit tests only (no Redis, no processes).
	$(GO) test -short -count=1 ./...

# Benchmark suite (cmd/loadgen): BENCH picks benchmarks (e.g. BENCH=B1,B4),
# BENCH_OUT is where results.md, results.json and chart.png go (use
# BENCH_OUT=docs/benchmarks to refresh the published figures), BENCH_FLAGS
# passes any other loadgen flag (BENCH_FLAGS=-h lists them).
BENCH       ?=
BENCH_OUT   ?= bench/out
BENCH_FLAGS ?=

# What the benchmark suite runs: the shipped commands, profile-guided, and
# the load generator (make bench, make pgo).
BUILD_BENCH = CGO_ENABLED=0 $(GO) build -trimpath -pgo=$(PGO_PROFILE) -o $(BIN)/ ./cmd/api ./cmd/worker ./cmd/loadgen

.PHONY: bench
bench: ## Benchmarks B1-B9 against raw asynq in the same run (real redis-server, api, worker, remote workers); ~4-5 min.
	@command -v redis-server >/dev/null || $(MAKE) deps
	$(BUILD_BENCH)
	BENCH_COMMAND="make bench$(if $(BENCH), BENCH=$(BENCH))$(if $(BENCH_FLAGS), BENCH_FLAGS='$(BENCH_FLAGS)')" \
	  $(BIN)/loadgen -bin $(BIN) -out $(BENCH_OUT) $(if $(BENCH),-only $(BENCH)) $(BENCH_FLAGS)

# Profile-guided optimisation: cmd/api/default.pgo and cmd/worker/default.pgo
# are one file, the CPU profiles of the api and the worker under the
# benchmark suite's create and drain loads, merged. A plain `go build` of
# either command uses its copy by itself; the builds here name one copy for
# every command, so that the commands share their compiled dependencies (two
# profile files would compile them twice). Refresh the profile after a large
# change on the hot path (docs/benchmarks.md, "Profile-guided builds").
PGO_PROFILE := cmd/api/default.pgo
PGO_BENCH := -only B1,B2,B3,B5 -concurrency 16,64 -batch-sizes 10,100 -worker-procs 1 -duration 9s

.PHONY: pgo
pgo: ## Refresh cmd/api/default.pgo and cmd/worker/default.pgo from CPU profiles taken during a benchmark run (~3 min).
	@command -v redis-server >/dev/null || $(MAKE) deps
	$(BUILD_BENCH)
	@tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	$(BIN)/loadgen -bin $(BIN) -out $$tmp/out -logs $$tmp/logs -pprof-dir $$tmp/pprof $(PGO_BENCH) >/dev/null && \
	$(GO) tool pprof -proto $$tmp/pprof/*.pprof > $$tmp/default.pgo && \
	cp $$tmp/default.pgo cmd/api/default.pgo && cp $$tmp/default.pgo cmd/worker/default.pgo && \
	ls $$tmp/pprof && echo "wrote cmd/api/default.pgo and cmd/worker/default.pgo"

.PHONY: lint
lint: ## go vet + gofmt check.
	$(GO) vet ./...
	cd $(K8S_DIR) && $(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^api/gen/')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

.PHONY: vulncheck
vulncheck: ## govulncheck ./... against a local copy of the Go vulnerability database (scripts/vulncheck.sh); VULNCHECK_ARGS='-show verbose ./...' for more.
	GO=$(GO) ./scripts/vulncheck.sh $(VULNCHECK_ARGS)

.PHONY: tidy
tidy: ## go mod tidy (both modules).
	$(GO) mod tidy
	cd $(K8S_DIR) && $(GO) mod tidy
