# cloudcloud: build, test and release.
#
#   make build                 ./cloudcloud for this machine
#   make test                  the README's test command
#   make release VERSION=v1.2.0  static linux binaries and SHA256SUMS in dist/
#   make bench                 the load test (scripts/bench.sh; extra flags in BENCH_ARGS)

GO      ?= go
# The version `cloudcloud version` prints: the git tag or commit, "dev"
# outside a git checkout.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
# Static binaries with no build paths in them: they run on any Linux of
# their architecture, and the same source gives the same bytes.
GOBUILD := CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)"
BINARY  ?= cloudcloud
DIST    ?= dist

.PHONY: build test release bench clean

build:
	$(GOBUILD) -o $(BINARY) ./cmd/cloudcloud

test:
	$(GO) test -race ./...

# One binary per target: a PC or server (amd64), a 64-bit Raspberry Pi OS
# (arm64) and a 32-bit one (armv7, Raspberry Pi 2 and later).
release:
	rm -rf $(DIST)
	mkdir -p $(DIST)
	GOOS=linux GOARCH=amd64 $(GOBUILD) -o $(DIST)/cloudcloud-$(VERSION)-linux-amd64 ./cmd/cloudcloud
	GOOS=linux GOARCH=arm64 $(GOBUILD) -o $(DIST)/cloudcloud-$(VERSION)-linux-arm64 ./cmd/cloudcloud
	GOOS=linux GOARCH=arm GOARM=7 $(GOBUILD) -o $(DIST)/cloudcloud-$(VERSION)-linux-armv7 ./cmd/cloudcloud
	cd $(DIST) && sha256sum cloudcloud-* > SHA256SUMS

bench:
	bash scripts/bench.sh $(BENCH_ARGS)

clean:
	rm -rf $(DIST) $(BINARY)
