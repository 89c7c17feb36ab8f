#!/usr/bin/env bash
# The newcomer's first command: build (installing cmake and a C compiler if missing) and run
# `attachment-gateway demo` — embedded SQLite, a local bucket under data/demo, sample files,
# and printed curl lines. Stop it with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/build-tools.sh
. scripts/build-tools.sh
ensure_build_tools
log "building (the first build takes a few minutes)"
cargo build --release --locked --bin attachment-gateway
exec target/release/attachment-gateway demo "$@"
