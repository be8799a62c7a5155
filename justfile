# serverless-wasm recipes. `just --list` shows them.

# Every guest package under guests/.
guest_packages := `ls -d guests/*/ | xargs -n1 basename | tr '\n' ' '`

# Run the whole test suite.
default: test

# Serve a configuration, or the bundled samples without one.
serve *ARGS:
    cargo run -p host -- serve {{ARGS}}

# Run the whole test suite (installs redis-server and iproute2 if missing).
test *ARGS:
    tests/run {{ARGS}}

# Build every guest with cargo-component, as a handler author would.
guests:
    #!/usr/bin/env bash
    set -euo pipefail
    for guest in {{guest_packages}}; do
        echo "cargo component build: guests/$guest"
        (cd "guests/$guest" && cargo component build --release)
    done

# Formatting and clippy, for the host crates and for the guests.
lint:
    cargo fmt --all -- --check
    cargo clippy --all-targets -- -D warnings
    cargo clippy --target wasm32-wasip2 -p serverless-wasm-sdk {{ replace_regex(guest_packages, '([^ ]+)', '-p $1') }} -- -D warnings

# All benchmarks; each writes its report under bench/.
bench: bench-fairness

# Fairness: a healthy route's latency alone and next to hostile guests
# (bench/fairness.md).
bench-fairness:
    cargo build --release -p host -p loadgen
    target/release/loadgen fairness --host target/release/host --out bench/fairness.md

# Soak: steady load across the sample routes for SECONDS, watching errors,
# RSS and fds (bench/soak.md).
soak SECONDS="180":
    cargo build --release -p host -p loadgen
    target/release/loadgen soak --host target/release/host --seconds {{SECONDS}} --out bench/soak.md
