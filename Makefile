# converge: make run (everything on one machine), make test (what CI runs).

GO       ?= go
BIN      := bin/converge
VERSION  ?= $(shell git describe --tags --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -X main.version=$(VERSION) -X main.commit=$(COMMIT)
FUZZTIME ?= 30s
# The race detector needs cgo and a C compiler; without them tests run without it.
RACE     ?= $(shell [ "$$($(GO) env CGO_ENABLED)" = 1 ] && command -v "$$($(GO) env CC)" >/dev/null 2>&1 && echo -race)

.PHONY: build run test vet fmt-check bench fuzz chaos clean

## build: compile bin/converge with version and commit stamped in
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/converge

## run: build, then start etcd, local Mesos and the controller (converge dev)
run: build
	./$(BIN) dev

## test: vet, formatting, and every test with the race detector
test: vet fmt-check
	@[ -n "$(RACE)" ] || echo "warning: no C compiler for cgo: running tests without -race"
	$(GO) test $(RACE) -timeout 15m ./...

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(find . -name '*.go' -not -path './.data/*' -not -path './bin/*')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

## bench: planner and allocator micro-benchmarks (once each), then the scale
## benchmark: 1000 clusters x 10 replicas on 1000 simulated agents (JSON)
bench: build
	$(GO) test -run '^$$' -bench . -benchtime 1x -benchmem ./controller/... ./mesosbridge/localmesos/
	./$(BIN) bench --clusters 1000 --replicas 10 --agents 1000 --json

## fuzz: fuzz user input decoding and localmesos's HTTP handlers, each for FUZZTIME (30s)
fuzz:
	$(GO) test -run '^$$' -fuzz='^FuzzDecode$$' -fuzztime=$(FUZZTIME) ./apis/v1alpha1
	$(GO) test -run '^$$' -fuzz='^FuzzSchedulerCall$$' -fuzztime=$(FUZZTIME) ./mesosbridge/localmesos
	$(GO) test -run '^$$' -fuzz='^FuzzExecutorCall$$' -fuzztime=$(FUZZTIME) ./mesosbridge/localmesos

## chaos: the fault suite, real processes, for CHAOS_DURATION (default 10m):
## controller/etcd SIGKILLs, agent loss, master failover, update faults;
## prints the invariants, convergence time and takeover_seconds
CHAOS_DURATION ?= 10m
chaos: build
	./$(BIN) chaos --duration $(CHAOS_DURATION)

## clean: remove build outputs (converge dev's data in .data/ is kept)
clean:
	rm -rf bin
	$(GO) clean -testcache
