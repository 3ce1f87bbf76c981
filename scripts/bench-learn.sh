#!/usr/bin/env bash
# `learn` and `replay` on generated sidecar logs (docs/benchmarks.md, "Learn
# and replay"). Builds the CLI as shipped (release) and the log generator
# (control/examples/request_log.rs), then, pinned to one core:
#
#   learn   on LINES lines, and on 4 x LINES (memory must not grow with lines)
#   replay  of the same lines against the proposal
#   replay  against the proposal plus RULES more rules in the namespace
#
# Prints one Markdown table row per run: wall time, CPU time (user + sys),
# lines per CPU second, peak RSS. Wall time is the figure to compare with a
# target only on an otherwise idle machine; CPU time is the one that holds on
# a busy one.
set -euo pipefail
cd "$(dirname "$0")/.."

LINES=${LINES:-1000000}
RULES=${RULES:-10000}
CARGO=${CARGO:-cargo}
out=target/bench-learn
bin=target/release/meshward-control
gen=target/release/examples/request_log

$CARGO build -q --release -p meshward-control --bin meshward-control --example request_log
pin=()
if command -v taskset >/dev/null; then pin=(taskset -c 0); fi

rm -rf "$out"
"$gen" --out "$out/1x" --lines "$LINES" --rules "$RULES"
"$gen" --out "$out/4x" --lines $((LINES * 4))

# run LABEL LINES COMMAND... : one table row; stdout of COMMAND to $out/stdout.
run() {
  local label=$1 lines=$2
  shift 2
  local status=0
  /usr/bin/time -o "$out/time" -f "%e %U %S %M" "${pin[@]}" "$@" >"$out/stdout" 2>"$out/stderr" || status=$?
  if [ "$status" -gt 1 ]; then
    cat "$out/stderr" >&2
    exit "$status"
  fi
  read -r wall user sys rss <"$out/time"
  awk -v l="$label" -v n="$lines" -v w="$wall" -v u="$user" -v s="$sys" -v r="$rss" -v x="$status" 'BEGIN {
    cpu = u + s
    printf "| %s | %d | %.2f s | %.2f s | %d | %.1f MiB | %d |\n", l, n, w, cpu, n / cpu, r / 1024, x
  }'
}

echo "| run | lines | wall | CPU | lines per CPU second | peak RSS | exit |"
echo "|---|---:|---:|---:|---:|---:|---:|"
d=$out/1x
run "learn" "$LINES" "$bin" learn --manifests "$d/manifests.yaml" --logs "$d/requests.log"
cp "$out/stdout" "$d/proposal.yaml"
run "replay, the proposal ($(grep -c '^  - name' "$d/proposal.yaml") rules)" "$LINES" \
  "$bin" replay --manifests "$d/manifests.yaml" --manifests "$d/proposal.yaml" --logs "$d/requests.log"
run "replay, the proposal + $RULES rules" "$LINES" \
  "$bin" replay --manifests "$d/manifests.yaml" --manifests "$d/proposal.yaml" --manifests "$d/partners.yaml" \
  --logs "$d/requests.log"
d=$out/4x
run "learn" $((LINES * 4)) "$bin" learn --manifests "$d/manifests.yaml" --logs "$d/requests.log"
cp "$out/stdout" "$d/proposal.yaml"
run "replay, the proposal" $((LINES * 4)) \
  "$bin" replay --manifests "$d/manifests.yaml" --manifests "$d/proposal.yaml" --logs "$d/requests.log"
if ! cmp -s "$out/1x/proposal.yaml" "$out/4x/proposal.yaml"; then
  echo "note: the proposal from 4 x $LINES lines differs from the one from $LINES lines" >&2
fi
