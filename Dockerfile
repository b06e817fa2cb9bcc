# syntax=docker/dockerfile:1
# One image for the controller (`run`) and for what it injects into server pods
# (`gateway` sidecar, `install-bridge` init container). The binary is fully static
# (glibc with crt-static) because install-bridge copies it into arbitrary server images,
# musl-based ones such as node:22-alpine included.
#   docker build -t ghcr.io/mcp-operator/mcp-operator:dev .

FROM rust:1.95-bookworm AS builder
WORKDIR /src
ENV BUILD_TARGET=x86_64-unknown-linux-gnu \
    RUSTFLAGS="-C target-feature=+crt-static" \
    CARGO_TERM_COLOR=never

# Dependency layer: rebuilt only when Cargo.toml or Cargo.lock change. Stub targets
# stand in for the sources (every target Cargo.toml names must exist).
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src tests/it benches \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs tests/it/main.rs \
 && for b in $(sed -n '/^\[\[bench\]\]/{n;s/^name = "\(.*\)"/\1/p}' Cargo.toml); do \
      echo 'fn main() {}' > "benches/$b.rs"; done \
 && cargo build --release --locked --target "$BUILD_TARGET" \
 && rm -rf src

# The crate itself. COPY keeps the sources' old mtimes, which can predate the stubs':
# touch them so cargo rebuilds the crate instead of reusing the stub build.
COPY src ./src
RUN find src -name '*.rs' -exec touch {} + \
 && cargo build --release --locked --target "$BUILD_TARGET" \
 && cp "target/$BUILD_TARGET/release/mcp-operator" /mcp-operator

FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.title="mcp-operator" \
      org.opencontainers.image.description="Kubernetes operator that runs, governs and observes MCP servers" \
      org.opencontainers.image.source="https://github.com/mcp-operator/mcp-operator" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /mcp-operator /mcp-operator
USER 65532:65532
ENTRYPOINT ["/mcp-operator"]
CMD ["run"]
