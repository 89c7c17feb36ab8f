#!/usr/bin/env bash
# The rate limiter's cost per request: Redis commands per request and the added latency at
# p50/p99, measured against the same gateway with in-process limits and with limits off.
# Starts its own redis-server on an ephemeral port (needs `redis-server` installed); the
# catalog is SQLite and the bucket a local directory, so nothing else is needed.
# LIMITER_COST_REQUESTS (default 2000) sets the measured requests per gateway and kind.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo test --release --test integration -- --ignored --exact limits::limiter_cost --nocapture
