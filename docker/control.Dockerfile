# The control service image (istio/control.yaml runs it as
# ghcr.io/meshward/control:0.1.0).
#
#   docker build -f docker/control.Dockerfile -t ghcr.io/meshward/control:0.1.0 .
#
# Not built in this repository's tests (no container daemon there);
# control/tests/install_yaml.rs checks that it builds with --locked and runs
# as the non-root user the Deployment expects (65532).

FROM rust:1.95 AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p meshward-control --locked \
 && cp target/release/meshward-control /meshward-control

# glibc and libgcc only, no shell; the `nonroot` tag runs as 65532:65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /meshward-control /usr/local/bin/meshward-control
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/meshward-control"]
CMD ["serve"]
