# syntax=docker/dockerfile:1
#
# The sidecar image: the binary, the plugins, languages.toml, and the toolchains of
# the languages chosen at build time.
#
#   docker build -t sidecar .                                  # python and node
#   docker build --build-arg LANGUAGES="py" -t sidecar-py .    # one language per image
#   docker build --build-arg LANGUAGES="all" -t sidecar-all .
#
# LANGUAGES: space-separated codes from languages.toml (py js ts go java c cpp php rs
# r f90 d bash), or the names python/node, or "all". Plugins for every language are
# always included (they are small); only the toolchains vary.

ARG RUST_VERSION=1.95
ARG DEBIAN=bookworm

# ---- build: the same steps as the README (`make build`) ----
FROM rust:${RUST_VERSION}-${DEBIAN} AS build
WORKDIR /src
RUN rustup target add wasm32-wasip2
COPY . .
RUN make build \
 && mkdir -p /out/plugins \
 && cp target/release/sidecar /out/ \
 && cp target/release/plugins/*.wasm /out/plugins/

# ---- runtime ----
FROM debian:${DEBIAN}-slim
ARG LANGUAGES="python node"
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# hadolint ignore=DL3008,DL3016,SC2086
RUN set -eux; \
    pkgs="ca-certificates tini"; \
    for lang in ${LANGUAGES}; do \
      case "$lang" in \
        all) pkgs="$pkgs python3 nodejs npm golang-go default-jdk-headless gcc g++ libc6-dev php-cli rustc r-base-core gfortran ldc"; want_tsc=1 ;; \
        py|python) pkgs="$pkgs python3" ;; \
        js|node) pkgs="$pkgs nodejs" ;; \
        ts) pkgs="$pkgs nodejs npm"; want_tsc=1 ;; \
        go) pkgs="$pkgs golang-go" ;; \
        java) pkgs="$pkgs default-jdk-headless" ;; \
        c) pkgs="$pkgs gcc libc6-dev" ;; \
        cpp) pkgs="$pkgs g++ libc6-dev" ;; \
        php) pkgs="$pkgs php-cli" ;; \
        rs) pkgs="$pkgs rustc gcc libc6-dev" ;; \
        r) pkgs="$pkgs r-base-core" ;; \
        f90) pkgs="$pkgs gfortran libc6-dev" ;; \
        d) pkgs="$pkgs ldc libc6-dev" ;; \
        bash) ;; \
        *) echo "unknown language: $lang" >&2; exit 1 ;; \
      esac; \
    done; \
    apt-get update; \
    apt-get install -y --no-install-recommends $pkgs; \
    if [ -n "${want_tsc:-}" ]; then npm install -g typescript @types/node; npm cache clean --force; fi; \
    rm -rf /var/lib/apt/lists/*; \
    groupadd --gid 65532 sandbox; \
    useradd --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin sandbox; \
    mkdir -p /workspace /var/run/sidecar /var/cache/sidecar /usr/lib/sidecar/plugins /etc/sidecar; \
    chown 65532:65532 /workspace; \
    chmod 0750 /var/run/sidecar

COPY --from=build /out/sidecar /usr/local/bin/sidecar
COPY --from=build /out/plugins/ /usr/lib/sidecar/plugins/
COPY languages.toml /etc/sidecar/languages.toml

ENV SOCKET_PATH=/var/run/sidecar/sidecar.sock \
    WORKSPACE_ROOT=/workspace \
    SIDECAR_PLUGINS_DIR=/usr/lib/sidecar/plugins \
    SIDECAR_LANGUAGES=/etc/sidecar/languages.toml \
    SIDECAR_CACHE_DIR=/var/cache/sidecar

# Compile the plugins once at build time, so start-up only maps the cached code.
RUN sidecar languages > /dev/null

VOLUME ["/workspace", "/var/run/sidecar"]
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 CMD ["sidecar", "healthcheck"]

# The sidecar itself runs as root so that it can drop user code to uid 65532, create
# cgroups and join the empty network namespace; user code never runs as root.
# tini reaps the orphans that killed executions leave behind.
# hadolint ignore=DL3002
USER 0
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/sidecar"]
CMD ["serve"]
