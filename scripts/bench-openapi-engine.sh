#!/usr/bin/env bash
# The engine's cost of `openapi` entries (docs/benchmarks.md, "OpenAPI entries
# in the engine"; under a minute): instructions per evaluation, counted by
# callgrind as scripts/bench-engine.sh counts them, of one Allowlist of five
# `openapi` entries over a 1,000-operation document and of the same Allowlist
# written by hand (one `methods`/`paths`/`notPaths` entry per operation),
# both derived by the control crate (control/examples/openapi_engine_configs.rs).
# Usage: scripts/bench-openapi-engine.sh [DIR]   (DIR keeps the two configurations)
set -euo pipefail
cd "$(dirname "$0")/.."

command -v valgrind >/dev/null || { echo "valgrind is required (apt-get install valgrind)" >&2; exit 1; }
dir=${1:-$(mktemp -d)}
cargo build -q --profile profiling -p meshward-filter --example configure_profile
cargo run -q --profile profiling -p meshward-control --example openapi_engine_configs -- "$dir" >"$dir/requests"
mapfile -t requests <"$dir/requests"

count() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null target/profiling/examples/configure_profile "$@" 2>&1 |
    awk '/Collected/ {print $4}'
}

echo "configuration | configure | per evaluation, ${requests[0]} | per evaluation, ${requests[1]}"
echo "---|---:|---:|---:"
for config in openapi paths; do
  per() { local a b; a=$(count "@$dir/$config.json" 1000 "$1"); b=$(count "@$dir/$config.json" 11000 "$1"); echo $(((b - a) / 10000)); }
  configure=$(count "@$dir/$config.json" 0)
  echo "$config | $configure | $(per "${requests[0]#* }") | $(per "${requests[1]#* }")"
done
