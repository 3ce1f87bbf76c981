# meshward: the one command that runs every test is `make test`.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c

CARGO ?= cargo
WASM_RUNNER := CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner

.PHONY: test demo setup fmt-check clippy test-native test-wasm build-wasm build-wasm-fault fuzz-smoke soak bench bench-envoy bench-scale bench-learn crd

## Every check CI runs, in order: formatting, lints, the shipped wasm build,
## native tests (including the end-to-end tests against a real Envoy, which
## load that build), the engine's tests compiled to wasm, and a short run of
## every fuzz target.
test: setup fmt-check clippy build-wasm test-native test-wasm fuzz-smoke
	@echo "make test: all checks passed"

## The main job, locally: Bookinfo's policies rendered by meshward-control,
## enforced by the filter in a real Envoy, real requests allowed and denied.
demo:
	scripts/setup.sh demo
	$(CARGO) build -q -p meshward-filter --target wasm32-wasip1 --release
	$(CARGO) build -q -p meshward-control -p meshward-e2e
	$(CARGO) run -q -p meshward-e2e --bin meshward-demo

setup:
	scripts/setup.sh

fmt-check:
	$(CARGO) fmt --all --check
	$(CARGO) fmt --manifest-path filter/fuzz/Cargo.toml --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p meshward-filter -p meshward-noop-filter --target wasm32-wasip1 --lib -- -D warnings
	$(CARGO) clippy -p meshward-filter --target wasm32-wasip1 --lib --features fault-injection -- -D warnings

test-native: build-wasm build-wasm-fault
	$(CARGO) test --workspace

## The engine's integration tests, compiled to wasm32 and run under node.
test-wasm:
	$(WASM_RUNNER) $(CARGO) test --target wasm32-unknown-unknown -p meshward-filter --tests

## The filter with the `fault-injection` feature, for the end-to-end tests of a
## failing VM (tests/e2e/tests/faults.rs); never shipped.
build-wasm-fault:
	$(CARGO) build -p meshward-filter --target wasm32-wasip1 --profile fault-injection --features fault-injection
	@ls -l target/wasm32-wasip1/fault-injection/meshward_filter.wasm

## Every fuzz target of filter/fuzz (cargo-fuzz, nightly), FUZZ_SECONDS each,
## from its committed seeds; new inputs go to a scratch directory, so the
## committed corpus stays as it is. From scratch on 2 cores: installing
## cargo-fuzz about 70 s (once, scripts/setup.sh), the build about 3 minutes,
## the runs 1 minute (docs/robustness.md). A failing input is left in
## filter/fuzz/artifacts/.
FUZZ_SECONDS ?= 20
FUZZ_TARGETS := canonical config differential
FUZZ := cargo +nightly fuzz
FUZZ_FLAGS := --fuzz-dir filter/fuzz --sanitizer none --debug-assertions
fuzz-smoke:
	$(FUZZ) build $(FUZZ_FLAGS)
	@for target in $(FUZZ_TARGETS); do \
	  scratch=$$(mktemp -d); mkdir $$scratch/corpus; \
	  dict=""; [[ -f filter/fuzz/$$target.dict ]] && dict="-dict=filter/fuzz/$$target.dict"; \
	  status=0; \
	  $(FUZZ) run $(FUZZ_FLAGS) $$target $$scratch/corpus filter/fuzz/corpus/$$target -- \
	    -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 $$dict > $$scratch/log 2>&1 || status=$$?; \
	  if [[ $$status -ne 0 ]]; then tail -n 60 $$scratch/log; rm -rf $$scratch; echo "fuzz-smoke: $$target failed"; exit 1; fi; \
	  echo "fuzz-smoke: $$target: $$(grep -E '^Done' $$scratch/log)"; \
	  rm -rf $$scratch; \
	done

## The filter in a real Envoy under load for 10 minutes, its configuration
## rewritten every 30 s, every response checked against the configuration that
## judged it (docs/robustness.md; not part of `make test`).
## `make soak SOAK_ARGS="--seconds 60"` for a shorter run.
SOAK_ARGS ?=
soak: setup build-wasm
	$(CARGO) build -q --release -p meshward-e2e --bin meshward-soak
	target/release/meshward-soak $(SOAK_ARGS)

## The artifact Istio loads, and the benchmarks' no-op wasm filter.
build-wasm:
	$(CARGO) build -p meshward-filter -p meshward-noop-filter --target wasm32-wasip1 --release
	@ls -l target/wasm32-wasip1/release/meshward_filter.wasm target/wasm32-wasip1/release/meshward_noop_filter.wasm

## Benchmarks for docs/benchmarks.md (minutes; not part of `make test`): the engine
## (callgrind instruction counts, wall clock natively and in V8, criterion; the cost of
## `openapi` entries against hand-written paths) and
## the control service's derivation at cluster scale.
bench:
	scripts/bench-engine.sh
	$(CARGO) bench -p meshward-control --bench derive --profile profiling
	$(CARGO) bench -p meshward-control --bench apidesc --profile profiling
	scripts/bench-openapi-engine.sh

## Side-by-side load runs in real Envoys (docs/benchmarks.md; about 25 minutes with
## the defaults): router only, RBAC, RBAC matcher tree, no-op wasm, meshward,
## ext_authz at N = 10, 1,000, 10,000 rules. `make bench-envoy BENCH_ARGS=--smoke`
## for a quick look; `-- --help` lists the options.
BENCH_ARGS ?=
bench-envoy: setup build-wasm
	$(CARGO) run -q -p meshward-bench -- $(BENCH_ARGS)

## The control service at cluster scale (docs/benchmarks.md; a few minutes):
## `serve`, built as shipped (release), against a fake API server holding a
## generated Istio-injected cluster of 10,000 and of 100,000 pods.
## `make bench-scale SCALE_ARGS="--namespaces 150"` for another size.
SCALE_ARGS ?=
bench-scale:
	$(CARGO) build --release -p meshward-control
	$(CARGO) build --profile profiling -p meshward-control --benches
	@if [ -n "$(SCALE_ARGS)" ]; then \
	  $(CARGO) bench -q -p meshward-control --bench scale --profile profiling -- --serve $(CURDIR)/target/release/meshward-control $(SCALE_ARGS); \
	else \
	  $(CARGO) bench -q -p meshward-control --bench scale --profile profiling -- --serve $(CURDIR)/target/release/meshward-control --namespaces 10; \
	  $(CARGO) bench -q -p meshward-control --bench scale --profile profiling -- --serve $(CURDIR)/target/release/meshward-control --namespaces 100; \
	fi

## `learn` and `replay` on generated sidecar logs (docs/benchmarks.md; a few
## minutes, 2.4 GB of logs under target/bench-learn): 1,000,000 lines, then
## 4,000,000, and a replay against 10,000 more rules.
## `make bench-learn LINES=200000` for a quick look.
LINES ?= 1000000
RULES ?= 10000
bench-learn:
	CARGO=$(CARGO) LINES=$(LINES) RULES=$(RULES) scripts/bench-learn.sh

## Regenerate istio/crd.yaml and the Helm chart's copy from the Allowlist
## types (tests fail on drift).
crd:
	$(CARGO) run -q -p meshward-control -- crd > istio/crd.yaml
	cp istio/crd.yaml istio/chart/meshward/crds/allowlist.yaml
