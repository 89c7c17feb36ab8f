#!/usr/bin/env bash
# Zero-downtime upgrade under load, end to end, with nothing external (SQLite + a local
# directory as the bucket, everything on 127.0.0.1 ephemeral ports, in a scratch directory).
#
#   1. starts the gateway and seeds thumbnails and large files;
#   2. starts slow ("long") downloads of the large files and a bounded wrk load of thumbnail
#      requests, each on a new connection;
#   3. in the middle, runs `attachment-gateway reload` (what systemd's ExecReload runs): a
#      successor takes over the listening sockets, the old process drains and exits;
#   4. starts more long downloads on the successor, then SIGTERMs it while one is running.
#
# It fails unless every wrk request got a 2xx, every download arrived whole (status, size and
# SHA-256), the successor took over, and both processes exited on their own within the grace
# period. Bounded: a few thousand requests, well under two minutes.
#
#   scripts/upgrade-under-load.sh            # builds the debug binary if needed
#   GATEWAY_BIN=target/release/attachment-gateway scripts/upgrade-under-load.sh
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

# --- knobs (bounded on purpose) ---------------------------------------------------------------
WRK_SECONDS=${WRK_SECONDS:-12}      # wrk runs this long, paced to a few thousand requests
WRK_CONNECTIONS=${WRK_CONNECTIONS:-8}
BIG_MIB=${BIG_MIB:-16}              # size of each large file
RATE=${RATE:-1M}                    # curl --limit-rate: 16 MiB at 1 MiB/s, about 15 s
GRACE_S=${GRACE_S:-15}              # server.grace_period_s: longer than one long download

log() { printf '== %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# --- tools -----------------------------------------------------------------------------------
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v curl >/dev/null || missing+=(curl)
command -v python3 >/dev/null || missing+=(python3)
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
fi

bin=${GATEWAY_BIN:-}
if [ -z "$bin" ]; then
  cargo build --quiet --locked --bin attachment-gateway
  bin="$repo/target/debug/attachment-gateway"
fi
case "$bin" in /*) ;; *) bin="$repo/$bin" ;; esac
[ -x "$bin" ] || fail "no gateway binary at $bin"

# --- scratch directory, ports, config ----------------------------------------------------------
work=$(mktemp -d)
pids=()
cleanup() {
  local status=$?
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for f in "$work"/data/run/gateway.pid; do
    [ -f "$f" ] && kill -INT "$(cat "$f")" 2>/dev/null || true
  done
  if [ "$status" -ne 0 ]; then
    echo "--- gateway log (last 40 lines) ---" >&2
    tail -n 40 "$work/gateway.log" >&2 || true
  fi
  if [ -n "${KEEP_WORK:-}" ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
cd "$work"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port); admin=$(free_port); app=$(free_port)
secret="upgrade-under-load-secret-0123456789abcdef"
base="http://127.0.0.1:$port"

cat > gateway.toml <<EOF
[server]
listen = "127.0.0.1:$port"
admin_listen = "127.0.0.1:$admin"
threads = 2
grace_period_s = $GRACE_S

[app]
upstream = "127.0.0.1:$app"

[auth]
algorithms = ["HS256"]
hs_secret = "$secret"

[catalog]
database_url = "sqlite://data/gateway.db"

[storage]
provider = "fs"
root = "data/bucket"

[limits]
# This script measures the upgrade, not the limiter: one user, one IP, thousands of requests.
user_per_minute = 100000000
ip_per_minute = 100000000
burst = 100000000
max_concurrent_per_user = 100000

[log]
level = "info"
format = "text"
EOF
mkdir -p data/bucket
"$bin" migrate --config gateway.toml >gateway.log 2>&1 || fail "migrate"

log "seeding 16 thumbnails and 4 files of $BIG_MIB MiB"
python3 - "$BIG_MIB" <<'PY'
import os, sqlite3, sys, time
big_mib = int(sys.argv[1])
db = sqlite3.connect("data/gateway.db")
now = int(time.time() * 1000)
db.execute('INSERT INTO "SupportDialog" ("id", "userId") VALUES (?, ?)', ("dlg_load", "user_load"))
def add(att, size, mime):
    key = f"support-chat/dialogs/dlg_load/{att}"
    os.makedirs(os.path.dirname(f"data/bucket/{key}"), exist_ok=True)
    with open(f"data/bucket/{key}", "wb") as f:
        left = size
        while left:
            n = min(left, 1 << 20)
            f.write(os.urandom(n))
            left -= n
    db.execute(
        'INSERT INTO "ChatAttachment" ("id", "dialogId", "messageId", "storagePath", "mimeType",'
        ' "sizeBytes", "originalName", "createdByUserId", "status", "createdAt", "linkedAt")'
        " VALUES (?, 'dlg_load', 'msg_load', ?, ?, ?, ?, 'user_load', 'LINKED', ?, ?)",
        (att, key, mime, size, f"{att}.bin", now, now),
    )
for i in range(16):
    add(f"thumb_{i}", 4096 + 1024 * i, "image/png")
for i in range(4):
    add(f"big_{i}", big_mib << 20, "application/octet-stream")
db.commit()
PY
token=$(python3 - "$secret" <<'PY'
import base64, hashlib, hmac, json, sys, time
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
body = b64(json.dumps({"sub": "user_load", "role": "USER", "permissions": [],
                       "exp": int(time.time()) + 3600}).encode())
sig = hmac.new(sys.argv[1].encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
print(f"{head}.{body}.{b64(sig)}")
PY
)

wait_gone() { # pid seconds
  local i
  for ((i = 0; i < $2 * 10; i++)); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  return 1
}

# --- start ---------------------------------------------------------------------------------------
log "starting the gateway"
"$bin" run --config gateway.toml >>gateway.log 2>&1 &
first=$!
for _ in $(seq 1 200); do
  curl -fsS "http://127.0.0.1:$admin/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$admin/healthz" >/dev/null || fail "gateway did not become healthy"
[ "$(cat data/run/gateway.pid)" = "$first" ] || fail "PID file does not name the first process"

download() { # attachment-id output-file
  curl -sS --limit-rate "$RATE" -H "Authorization: Bearer $token" -o "$2" \
    -w '%{http_code}' "$base/api/support-chat/attachments/dlg_load/$1" >"$2.status" 2>"$2.err" || true
}
dl_pids=()
dl_files=()
start_download() { # attachment-id tag
  download "$1" "dl_$2" &
  dl_pids+=($!)
  dl_files+=("$1:dl_$2")
}

cat > load.lua <<'LUA'
-- Thumbnails in turn, each request on a new connection (Connection: close), paced so that the
-- run spans the upgrade: WRK_CONNECTIONS x (1000 / delay) requests per second at most.
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", "/api/support-chat/attachments/dlg_load/thumb_" .. (i % 16))
end
delay = function() return 20 end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK requests=%d connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.requests, e.connect, e.read, e.write, e.status, e.timeout))
end
LUA

log "long downloads (4 x $BIG_MIB MiB at $RATE/s) and wrk for ${WRK_SECONDS}s"
for i in 0 1 2 3; do start_download "big_$i" "before_$i"; done
wrk -t2 -c"$WRK_CONNECTIONS" -d"${WRK_SECONDS}s" --timeout 10s -s load.lua \
  -H "Authorization: Bearer $token" -H "Connection: close" "$base" >wrk.out 2>&1 &
wrk_pid=$!
pids+=("$wrk_pid")

sleep 3
log "reload (zero-downtime upgrade) while all of that runs"
"$bin" reload --config gateway.toml >>gateway.log 2>&1 || fail "reload failed"
second=$(cat data/run/gateway.pid)
[ "$second" != "$first" ] || fail "the PID file still names the old process"
kill -0 "$second" || fail "the successor is not running"
kill -0 "$first" || fail "the old process did not wait for its downloads"
log "successor $second owns the sockets; $first drains"

sleep 3
for i in 0 1; do start_download "big_$i" "after_$i"; done

wait "$wrk_pid" || fail "wrk exited with an error: $(cat wrk.out)"
for p in "${dl_pids[@]}"; do wait "$p"; done

log "old process exits on its own within the grace period"
wait_gone "$first" $((GRACE_S + 15)) || fail "old process $first still running"
kill -0 "$second" || fail "the successor died with the old process"

# --- SIGTERM: stop accepting, finish the running download, exit ------------------------------------
log "SIGTERM with a download running"
dl_pids=()
start_download big_3 during_term
sleep 1
kill -TERM "$second"
sleep 1
if curl -sS -m 2 -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null; then
  fail "a new connection was served after SIGTERM"
fi
wait "${dl_pids[0]}"
wait_gone "$second" $((GRACE_S + 15)) || fail "process $second did not exit after SIGTERM"

# --- verdict -------------------------------------------------------------------------------------
line=$(grep '^WRK ' wrk.out) || fail "no wrk summary: $(cat wrk.out)"
echo "$line"
read -r requests failed <<<"$(echo "$line" | python3 -c '
import sys
kv = dict(p.split("=") for p in sys.stdin.read().split()[1:])
print(kv["requests"], sum(int(v) for k, v in kv.items() if k != "requests"))')"
cut=0
for entry in "${dl_files[@]}"; do
  att=${entry%%:*}; file=${entry#*:}
  want_size=$(stat -c %s "data/bucket/support-chat/dialogs/dlg_load/$att")
  got_size=$(stat -c %s "$file" 2>/dev/null || echo 0)
  status=$(cat "$file.status" 2>/dev/null || echo 000)
  if [ "$status" != 200 ] || [ "$got_size" != "$want_size" ] ||
    [ "$(sha256sum <"$file")" != "$(sha256sum <"data/bucket/support-chat/dialogs/dlg_load/$att")" ]; then
    echo "cut: $file ($att) status=$status bytes=$got_size/$want_size $(cat "$file.err")" >&2
    cut=$((cut + 1))
  fi
done
downloads=${#dl_files[@]}
echo "RESULT requests=$requests failed=$failed downloads=$downloads cut=$cut"
[ "$requests" -ge 1000 ] || fail "only $requests requests: the load did not span the upgrade"
[ "$failed" -eq 0 ] || fail "$failed requests failed during the upgrade"
[ "$cut" -eq 0 ] || fail "$cut downloads were cut"
log "zero-downtime upgrade: $requests requests, 0 failed; $downloads long downloads, 0 cut"
