# The container host: `testexec serve` (the HTTP front door, push endpoints
# and in-process workers) and `testexec worker` in one small image, for
# Cloud Run, Container Apps and Kubernetes. Built from the repository root:
#
#   docker build -t testexec .
#   docker run -p 8080:8080 -e TESTEXEC_BACKEND=aws -e TESTEXEC_API_TOKEN=... testexec
#   docker run ... testexec worker --queue execute --once
#
# The runtime image has no shell and no package manager: the host needs
# neither. Shard jobs run test commands, which need a toolchain: run
# `testexec worker --queue execute` from an image that has yours
# (functions/execute/Dockerfile, examples/execute-container/), and start the
# host with `--jobs 0` so it runs no shard itself.

# checkov:skip=CKV_DOCKER_2: no shell or curl in the image to run a HEALTHCHECK; Cloud Run, Container Apps and Kubernetes probe GET /healthz themselves.

# Debian 12 on both sides: the binary's glibc matches the runtime's.
FROM rust:1.95.0-bookworm AS build
WORKDIR /src
COPY . .
# The cloud backend set: `--build-arg FEATURES=azure` for Container Apps,
# `gcp` for Cloud Run (docs/deploy-gcp.md); several as `aws,gcp`.
ARG FEATURES=aws
RUN cargo build --release --locked -p testexec-cli --features "$FEATURES" --bin testexec \
    && install -D -m 0755 target/release/testexec /out/testexec

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/testexec /usr/local/bin/testexec
# Containers are reached through their platform's proxy, so listen on every
# interface; writes still need TESTEXEC_API_TOKEN (or an IAM-verified caller).
ENV TESTEXEC_BIND=0.0.0.0 \
    PORT=8080 \
    TESTEXEC_STATE_DIR=/tmp/testexec
EXPOSE 8080
# distroless's `nonroot` user, by number so any runtime can resolve it.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/testexec"]
CMD ["serve"]
