# The two commands of the README:
#   make serve   build the plugins and the host, then start the sidecar with working defaults
#   make test    build everything and run every test
# Everything is built with the one `release` profile (the plugins with `plugin`).

SIDECAR := target/release/sidecar
CARGO ?= cargo

.PHONY: serve test build plugins bench lint

build: plugins
	$(CARGO) build --release -p sidecar

plugins:
	scripts/build-plugins

serve: build
	$(SIDECAR) serve

# Every test binary runs even after one fails, so that a run reports all failures.
test: build
	$(CARGO) test --release --workspace --no-fail-fast

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings

bench: build
	scripts/bench
