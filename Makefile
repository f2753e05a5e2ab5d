# feedcdc — developer commands. `make test` is what CI runs (see .ci/run).
GO ?= go
PKGS ?= ./...
TESTFLAGS ?= -race -count=1 -timeout 30m

.PHONY: all build test vet fmt bench deps demo

all: vet build

build:
	$(GO) build -o bin/feedcdc ./cmd/feedcdc

# deps installs what the tests need on a fresh Debian machine (needs root).
deps:
	bash .ci/deps

# vet: gofmt, go vet, staticcheck, and no dead code. deadcode -test counts
# the tests as roots, so a helper only tests use is live, but a function
# nothing reaches (not even a test) fails the build: delete it. The tools are
# installed by .ci/deps (make deps) into $(GOBIN).
GOBIN ?= $(shell $(GO) env GOPATH)/bin
vet:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GOBIN)/staticcheck $(PKGS)
	@out=$$($(GOBIN)/deadcode -test $(PKGS)); if [ -n "$$out" ]; then echo "dead code (unreachable from main and the tests; delete it):"; echo "$$out"; exit 1; fi

test: deps vet
	$(GO) test $(TESTFLAGS) $(PKGS)

# demo runs the one-command demo (a separate command: it links the test bed).
demo:
	$(GO) run ./cmd/feedcdc-demo

bench:
	$(GO) test -run '^$$' -bench . -benchtime 1x $(PKGS)
