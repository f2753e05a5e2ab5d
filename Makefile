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

vet:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

test: deps vet
	$(GO) test $(TESTFLAGS) $(PKGS)

bench:
	$(GO) test -run '^$$' -bench . -benchtime 1x $(PKGS)
