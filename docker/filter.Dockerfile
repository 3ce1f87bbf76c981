# The filter module as an OCI image Istio's istio-agent can pull
# (WasmPlugin `url: oci://...`): a single-layer image FROM scratch whose only
# file is /plugin.wasm, the layout Istio documents for Docker-built images.
#
#   make build-wasm
#   docker build -f docker/filter.Dockerfile -t ghcr.io/meshward/filter:0.1.0 .
#   docker push ghcr.io/meshward/filter:0.1.0
#   skopeo inspect --format '{{.Digest}}' docker://ghcr.io/meshward/filter:0.1.0
#
# The last line prints the image manifest's digest: without its `sha256:`
# prefix it is the WasmPlugin's spec.sha256 (serve --sha256) for the oci://
# URL. Not `sha256sum plugin.wasm`: that is the value for http(s):// URLs
# only. An image built by Docker has a different digest from the one
# `meshward-control oci-image` writes for the same module (docs/install.md
# publishes that one, reproducibly and without Docker).
#
# Not built in this repository's tests (no container daemon there);
# control/tests/install_yaml.rs checks the layout below.
FROM scratch
COPY target/wasm32-wasip1/release/meshward_filter.wasm /plugin.wasm
