# The filter module as an OCI image Istio's istio-agent can pull
# (WasmPlugin `url: oci://...`): a single-layer image FROM scratch whose only
# file is /plugin.wasm, the layout Istio documents for Docker-built images.
#
#   make build-wasm
#   docker build -f docker/filter.Dockerfile -t ghcr.io/meshward/filter:0.1.0 .
#   docker push ghcr.io/meshward/filter:0.1.0
#   sha256sum target/wasm32-wasip1/release/meshward_filter.wasm   # WasmPlugin spec.sha256 / serve --sha256
#
# Not built in this repository's tests (no container daemon there);
# control/tests/install_yaml.rs checks the layout below.
FROM scratch
COPY target/wasm32-wasip1/release/meshward_filter.wasm /plugin.wasm
