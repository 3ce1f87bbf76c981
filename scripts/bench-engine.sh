#!/usr/bin/env bash
# Engine measurements for docs/benchmarks.md (minutes; not part of `make test`):
#   1. instructions per evaluation and per configure, counted by callgrind
#      (deterministic: the figures to compare across rule counts),
#   2. wall-clock medians natively and compiled to wasm under node's V8,
#   3. criterion benchmarks (wall clock, with confidence intervals).
# Usage: scripts/bench-engine.sh [--no-criterion]
set -euo pipefail
cd "$(dirname "$0")/.."

command -v valgrind >/dev/null || { echo "valgrind is required (apt-get install valgrind)" >&2; exit 1; }
cargo build -q --profile profiling -p meshward-filter --example configure_profile --example engine_timing
# Without the proxy-wasm glue: the program runs under node's WASI, not in Envoy.
cargo build -q --profile profiling -p meshward-filter --example engine_timing --target wasm32-wasip1 --no-default-features

count() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null target/profiling/examples/configure_profile "$@" 2>&1 |
    awk '/Collected/ {print $4}'
}

echo "## Instructions (callgrind)"
echo "rules | configure | per evaluation, allow last rule | per evaluation, deny"
for n in 10 1000 10000; do
  configure=$(count "$n" 0)
  per() { local a b; a=$(count "$n" 1000 "$1"); b=$(count "$n" 11000 "$1"); echo $(((b - a) / 10000)); }
  echo "$n | $configure | $(per allow) | $(per deny)"
done
echo
echo "## Instructions (callgrind), deny rules and address blocks mixed in (generated_rules_mixed)"
echo "rules | configure | per evaluation, allow last rule | per evaluation, deny"
n=10000
configure=$(count "$n" 0 allow mixed)
per() { local a b; a=$(count "$n" 1000 "$1" mixed); b=$(count "$n" 11000 "$1" mixed); echo $(((b - a) / 10000)); }
echo "$n | $configure | $(per allow) | $(per deny)"

echo
echo "## Wall clock, native"
target/profiling/examples/engine_timing
echo
echo "## Wall clock, wasm32-wasip1 under node $(node --version)"
node --no-warnings scripts/run-wasi.mjs target/wasm32-wasip1/profiling/examples/engine_timing.wasm

if [[ "${1:-}" != "--no-criterion" ]]; then
  echo
  echo "## criterion"
  cargo bench -p meshward-filter --bench engine --profile profiling
fi
