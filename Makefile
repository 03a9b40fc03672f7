# Flightdeck's front door: `make help` lists what it can do.

GO       ?= go
BIN      := bin/flightdeck
PKGS     := ./...

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build the server into bin/
	$(GO) build -o $(BIN) ./cmd/server

.PHONY: run
run: build ## Start Flightdeck on the embedded database and print its URL
	./$(BIN) serve

.PHONY: test
test: check-generated ## Run every test against real PostgreSQL (race detector on)
	$(GO) test -race -count=1 -timeout 10m $(PKGS)

# The OpenAPI document and the packages generated from it: the server's
# types and routes, and the client CI uses.
OPENAPI     := internal/api/openapi.yaml
OPENAPI_GEN := internal/api/apigen/apigen.gen.go:internal/api/apigen/cfg.yaml \
               internal/apiclient/apiclient.gen.go:internal/apiclient/cfg.yaml

.PHONY: generate
generate: ## Regenerate sqlc, templ and OpenAPI code
	$(GO) tool sqlc generate
	$(GO) tool templ generate
	@for pair in $(OPENAPI_GEN); do \
		echo "$(GO) tool oapi-codegen -config $${pair#*:} -o $${pair%%:*} $(OPENAPI)"; \
		$(GO) tool oapi-codegen -config "$${pair#*:}" -o "$${pair%%:*}" $(OPENAPI) || exit 1; \
	done

.PHONY: check-generated
check-generated: ## Fail when regenerating would change a committed file
	@$(GO) tool sqlc diff || { echo "sqlc output is stale: run 'make generate' and commit" >&2; exit 1; }
	@templ=$$($(GO) tool -n templ) && tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	mkdir -p "$$tmp/web" && cp -R web/templates "$$tmp/web/templates" && \
	(cd "$$tmp" && "$$templ" generate >/dev/null 2>&1) && \
	diff -r web/templates "$$tmp/web/templates" >/dev/null || \
	{ echo "templ output is stale: run 'make generate' and commit" >&2; exit 1; }
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	for pair in $(OPENAPI_GEN); do \
		out=$${pair%%:*}; \
		$(GO) tool oapi-codegen -config "$${pair#*:}" -o "$$tmp/$$(basename $$out)" $(OPENAPI) && \
		diff "$$out" "$$tmp/$$(basename $$out)" >/dev/null || \
		{ echo "OpenAPI output $$out is stale: run 'make generate' and commit" >&2; exit 1; }; \
	done

.PHONY: lint
lint: ## gofmt, go vet and a tidy go.mod
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) mod tidy -diff

# The engine's benchmarks are fixed workloads (1,000 canary runs for a set
# window) that report their own figures, so each runs exactly once; the
# other packages' benchmarks keep the usual timing.
ENGINE_PKG := ./internal/engine

.PHONY: bench
bench: ## Run the benchmarks (the engine's run once each, in about a minute)
	$(GO) test -run '^$$' -bench . -benchtime=1x -count=1 -timeout 10m $(ENGINE_PKG)
	$(GO) test -run '^$$' -bench . -benchmem -count=1 $$($(GO) list $(PKGS) | grep -v '/internal/engine$$')

.PHONY: clean
clean: ## Remove build output (the embedded database in .flightdeck/ is kept)
	rm -rf bin
