# orbit's build. `make demo` and `make test` are all a fresh Debian 12 machine
# (as root, with Go installed at /usr/local/go) needs.

SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
export CGO_ENABLED := 0

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo 0.1.0+dev)
LDFLAGS := -X main.version=$(VERSION)
BIN := bin/orbit
GO_SOURCES := $(shell find . -name '*.go' -not -path './.git/*') go.mod go.sum

# Debian packages: what running orbit needs, and what the tests need besides.
RUN_PACKAGES := busybox-static systemd-container xz-utils bzip2 ca-certificates containernetworking-plugins iptables
TEST_PACKAGES := $(RUN_PACKAGES) gnupg iproute2 util-linux nftables docker-registry skopeo debootstrap

# Tools built from the Go module proxy, pinned, into a folder of the tree.
STATICCHECK_VERSION := v0.8.2
TOOLS := $(CURDIR)/bin/tools
STATICCHECK := $(TOOLS)/staticcheck-$(STATICCHECK_VERSION)
GOIMPORTS_VERSION := v0.52.0
GOIMPORTS := $(TOOLS)/goimports-$(GOIMPORTS_VERSION)

.PHONY: systemd-testroot all build demo test unit functional bench vet fmt lint tidy cover deps-run deps-test clean

all: build

build: $(BIN)

SUPERVISOR := stage1/builtin/assets/orbit-supervisor

# The small standalone pod supervisor is built first: orbit embeds it into
# the nspawn stage1 image as the pod's PID 1.
$(SUPERVISOR): $(GO_SOURCES)
	go build -trimpath -ldflags '-s -w' -o $@ ./cmd/orbit-supervisor

$(BIN): $(GO_SOURCES) $(SUPERVISOR)
	go build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./cmd/orbit

# Installs the Debian packages that are missing (apt-get update only when
# something is missing, so repeated runs stay fast and offline).
define apt_install
	@missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
endef

deps-run:
	$(call apt_install,$(RUN_PACKAGES))

deps-test:
	$(call apt_install,$(TEST_PACKAGES))

demo: deps-run build
	./examples/hello/demo.sh $(BIN)

vet:
	go vet ./...

# gofmt, and goimports' grouping: the standard library, other modules,
# then orbit's own packages.
fmt: $(GOIMPORTS)
	@bad=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$bad" ]; then echo "gofmt needed:"; echo "$$bad"; exit 1; fi
	@bad=$$($(GOIMPORTS) -local github.com/orbit-containers/orbit -l $$(git ls-files '*.go')); if [ -n "$$bad" ]; then echo "goimports -local github.com/orbit-containers/orbit needed:"; echo "$$bad"; exit 1; fi

$(GOIMPORTS):
	mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) go install golang.org/x/tools/cmd/goimports@$(GOIMPORTS_VERSION)
	mv $(TOOLS)/goimports $@

$(STATICCHECK):
	mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) go install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	mv $(TOOLS)/staticcheck $@

lint: $(STATICCHECK)
	$(STATICCHECK) ./...

# go.mod and go.sum must be what `go mod tidy` makes of them.
tidy:
	go mod tidy -diff

# Unit tests run with the race detector, which needs cgo; the binaries
# orbit ships stay static (CGO_ENABLED=0 above).
unit: $(SUPERVISOR)
	CGO_ENABLED=1 go test -race -count=1 -timeout 10m $$(go list ./... | grep -v /tests)

functional: build
	ORBIT_BINARY=$(CURDIR)/$(BIN) go test -count=1 -timeout 15m ./tests/...

test: deps-test fmt vet tidy lint unit functional

# Coverage of the unit tests and of the functional tests, which drive an
# orbit binary built with -cover; both reports go to bin/cover/.
COVER := $(CURDIR)/bin/cover
cover: deps-test $(SUPERVISOR)
	rm -rf $(COVER) && mkdir -p $(COVER)/functional
	go test -count=1 -timeout 10m -coverprofile=$(COVER)/unit.out $$(go list ./... | grep -v /tests) >/dev/null
	go build -cover -coverpkg=./... -trimpath -ldflags '$(LDFLAGS)' -o $(COVER)/orbit ./cmd/orbit
	GOCOVERDIR=$(COVER)/functional ORBIT_BINARY=$(COVER)/orbit go test -count=1 -timeout 15m ./tests/... >/dev/null
	go tool covdata textfmt -i=$(COVER)/functional -o $(COVER)/functional.out
	@echo "unit tests, by package:"
	@./.ci/cover-by-package < $(COVER)/unit.out
	@echo "functional tests (the orbit binary), by package:"
	@./.ci/cover-by-package < $(COVER)/functional.out
	@echo "total: unit $$(go tool cover -func=$(COVER)/unit.out | tail -1 | awk '{print $$NF}'), functional $$(go tool cover -func=$(COVER)/functional.out | tail -1 | awk '{print $$NF}')"

bench: deps-test build
	$(call apt_install,curl podman)
	ORBIT_BINARY=$(CURDIR)/$(BIN) go test -count=1 -timeout 10m -run '^$$' -bench . -benchtime 20x ./tests/...

clean:
	rm -rf bin $(SUPERVISOR)

# The Debian 12 root the systemd tests (tests/systemd_test.go) boot with
# systemd-nspawn -b, built once with debootstrap and cached in
# /var/cache/orbit-tests (the tests build it themselves when it is missing).
systemd-testroot: deps-test
	tests/testdata/systemd/mkroot.sh
