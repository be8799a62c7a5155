# serverless-wasm recipes. `just --list` shows them.

# Every Rust guest package under guests/rust/.
guest_packages := `ls -d guests/rust/*/ | xargs -n1 basename | tr '\n' ' '`

# The other guest languages; each has guests/<language>/build.
guest_languages := "c cpp python javascript go zig"

# Run the whole test suite.
default: test

# Serve a configuration, or the bundled samples without one.
serve *ARGS:
    cargo run -p host -- serve {{ARGS}}

# Run the whole test suite (installs redis-server and iproute2 if missing).
test *ARGS:
    tests/run {{ARGS}}

# Build every Rust guest with cargo-component, as a handler author would.
guests:
    #!/usr/bin/env bash
    set -euo pipefail
    for guest in {{guest_packages}}; do
        echo "cargo component build: guests/rust/$guest"
        (cd "guests/rust/$guest" && cargo component build --release)
    done

# Build the legacy-ABI core modules under guests/legacy/ (the WAT sample is
# converted by the guest-artifacts crate).
guests-legacy:
    cargo build --release --target wasm32-unknown-unknown -p legacy-hello -p legacy-backend -p legacy-probe

# Build every language's samples from source, installing missing toolchains.
guests-all: guests
    guests/tools/install {{guest_languages}}
    for language in {{guest_languages}}; do guests/$language/build; done

# Install the toolchains of the given languages (all when none is given).
guest-tools *LANGUAGES:
    guests/tools/install {{LANGUAGES}}

# The samples in C (clang, wit-bindgen c).
guests-c: (guest-tools "c")
    guests/c/build

# The samples in C++ (clang++, wit-bindgen cpp).
guests-cpp: (guest-tools "cpp")
    guests/cpp/build

# The samples in Python (componentize-py).
guests-python: (guest-tools "python")
    guests/python/build

# The samples in JavaScript (componentize-js).
guests-javascript: (guest-tools "javascript")
    guests/javascript/build

# The samples in Go (wit-bindgen go, Go's wasip1 port and the WASI adapter).
guests-go: (guest-tools "go")
    guests/go/build

# The samples in Zig (zig with the wit-bindgen C glue).
guests-zig: (guest-tools "zig")
    guests/zig/build

# Formatting and clippy, for the host crates and for the guests.
lint:
    cargo fmt --all -- --check
    cargo clippy --all-targets -- -D warnings
    cargo clippy --target wasm32-wasip2 -p serverless-wasm-sdk {{ replace_regex(guest_packages, '([^ ]+)', '-p $1') }} -- -D warnings
    cargo clippy --target wasm32-unknown-unknown -p serverless-wasm-legacy -p legacy-hello -p legacy-backend -p legacy-probe -- -D warnings

# All benchmarks; each writes its report (bench/, guests/README.md).
bench: bench-speed bench-streaming bench-routes bench-startup bench-fairness bench-languages bench-messaging

# Fairness: a healthy route's latency alone and next to hostile guests
# (bench/fairness.md).
bench-fairness:
    cargo build --release -p host -p loadgen
    target/release/loadgen fairness --host target/release/host --out bench/fairness.md

# Speed next to native hyper, `wasmtime serve` (default and tuned pool) and
# `wash dev`, loaded by wrk, in the default configuration and quiet, and
# the per-request budget curve of native hyper with added busy work
# (bench/results.md). Pass e.g. `--rounds 1 --seconds 3` for a quick look.
bench-speed *ARGS: (guest-tools "bench")
    cargo build --release -p host -p loadgen -p native-hello
    target/release/loadgen compare --host target/release/host --native target/release/native-hello --wasmtime .tools/bin/wasmtime --wash .tools/bin/wash --out bench/results.md {{ARGS}}

# 1 GiB echo and download through wasi:http next to native hyper and
# `wasmtime serve`: MB/s and RSS (bench/streaming.md). `--rounds N --mib N`.
bench-streaming *ARGS: (guest-tools "bench")
    cargo build --release -p host -p loadgen -p native-hello
    target/release/loadgen streaming --host target/release/host --native target/release/native-hello --wasmtime .tools/bin/wasmtime --out bench/streaming.md {{ARGS}}

# 1, 100, 1000 and 10,000 routes: startup, idle RSS, req/s hitting one
# route and random routes (bench/routes.md). `--rounds N --seconds N`.
bench-routes *ARGS: (guest-tools "bench")
    cargo build --release -p host -p loadgen
    target/release/loadgen routes --host target/release/host --out bench/routes.md {{ARGS}}

# Start to first response with 50 routes (cold and warm compile cache),
# RSS idle and per in-flight instance (bench/startup.md).
bench-startup:
    cargo build --release -p host -p loadgen
    target/release/loadgen startup --host target/release/host --routes 50 --out bench/startup.md

# Subscriptions: messages/s and publish-to-handler latency (p50, p99) on
# the embedded broker and on NATS, next to a native Rust consumer on the
# same NATS (bench/messaging.md). Installs nats-server when missing.
bench-messaging *ARGS:
    command -v nats-server >/dev/null || (sudo -n true 2>/dev/null && sudo apt-get install -y nats-server || apt-get install -y nats-server)
    cargo build --release -p host -p loadgen
    target/release/loadgen messaging --host target/release/host --out bench/messaging.md {{ARGS}}

# Every guest language: component sizes, clean build time, first-request
# and steady-state latency of hello (the table in guests/README.md).
bench-languages: guest-tools
    cargo build --release -p host -p loadgen
    target/release/loadgen languages --host target/release/host --out guests/README.md

# Soak: steady load across the sample routes for SECONDS, watching errors,
# RSS and fds (bench/soak.md).
soak SECONDS="180":
    cargo build --release -p host -p loadgen
    target/release/loadgen soak --host target/release/host --seconds {{SECONDS}} --out bench/soak.md
