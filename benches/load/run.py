#!/usr/bin/env python3
"""Side-by-side load test of the gateway against nginx and the bare origin, in one run.

Starts, on 127.0.0.1 only and on free ports: SeaweedFS (the S3-compatible origin; its S3 port
with an anonymous read identity is the "bare origin"), nginx as a plain reverse proxy to that
same port with no auth at all (the anchor), Redis, a fresh PostgreSQL database and the release
gateway with full authn/authz/catalog lookup/SigV4 signing (and the Redis limiter when the
build has one). Every scenario drives each server with the same `wrk` invocation for a bounded
time, then one table is printed (and written to the output directory as Markdown and JSON).

Usually started through `benches/load/run.sh`, which installs the tools and builds first.
"""

import argparse
import asyncio
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
GATEWAY = ROOT / "target" / "release" / "attachment-gateway"
SEEDER = ROOT / "target" / "release" / "examples" / "load_seed"
PG_ADMIN = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qAtc"]

MIB = 1024 * 1024
DIALOG = "bench-dialog"
BUCKET = "bench"
SIZES = {"img8k": 8 * 1024, "video256m": 256 * MIB, "big1g": 1024 * MIB}
TARGETS = ["origin", "nginx", "gateway"]
# SeaweedFS's gRPC listeners sit this far above their HTTP port.
GRPC_OFFSET = 10_000


def log(msg):
    print(f"[load] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes and ports


def is_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def free_port(taken, grpc_twin=False):
    """A free port (and, for SeaweedFS, a free gRPC twin), never one already handed out."""
    while True:
        port = random.randrange(20_000, 45_000)
        pair = [port, port + GRPC_OFFSET] if grpc_twin else [port]
        if not any(p in taken for p in pair) and all(is_free(p) for p in pair):
            taken.update(pair)
            return port


def wait_port(port, proc, name, within=60):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{name} exited with {proc.returncode}; see its log")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"{name} did not listen on {port} within {within}s")


class Procs:
    """Everything this run started, each in its own process group, stopped at the end."""

    def __init__(self):
        self.procs = {}

    def start(self, name, args, log_path, **kw):
        out = open(log_path, "wb")
        proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, **kw)
        self.procs[name] = proc
        return proc

    def stop_all(self):
        for name, proc in reversed(list(self.procs.items())):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()


def process_tree(root):
    """`root` and all its descendants (nginx workers), from /proc."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def reset_peak_rss(root):
    # Writing 5 to clear_refs resets VmHWM (the peak RSS) to the current RSS (proc(5)).
    for pid in process_tree(root):
        try:
            with open(f"/proc/{pid}/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass


def peak_rss_kib(root):
    """Sum of VmHWM over the process tree: the peak since the last reset."""
    total = 0
    for pid in process_tree(root):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


# ---------------------------------------------------------------- the servers


def start_seaweed(procs, tmp, taken, access_key, secret_key):
    ports = {name: free_port(taken, grpc_twin=True)
             for name in ["s3", "master", "volume", "filer", "admin"]}
    d = tmp / "weed"
    d.mkdir()
    identities = {"identities": [
        {"name": "gateway", "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
         "actions": ["Admin", "Read", "Write", "List"]},
        # nginx and the bare-origin runs read without any signature: SeaweedFS's special
        # "anonymous" identity gets Read (and nothing else).
        {"name": "anonymous", "actions": ["Read"]},
    ]}
    (d / "s3.json").write_text(json.dumps(identities))
    args = ["weed", f"-logdir={d}", "mini", f"-dir={d}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-s3.config={d / 's3.json'}", "-webdav=false", "-admin.ui=false",
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.telemetry=false",
            f"-filer.localSocket={d / 'filer.sock'}", f"-s3.localSocket={d / 's3.sock'}"]
    for name, port in ports.items():
        args += [f"-{name}.port={port}", f"-{name}.port.grpc={port + GRPC_OFFSET}"]
    proc = procs.start("seaweed", args, d / "weed.out", cwd=d, env={**os.environ, "TMPDIR": str(d)})
    wait_port(ports["s3"], proc, "weed mini")
    return proc, ports


def start_redis(procs, tmp, taken):
    port = free_port(taken)
    proc = procs.start("redis", ["redis-server", "--bind", "127.0.0.1", "--port", str(port),
                                 "--save", "", "--appendonly", "no", "--dir", str(tmp)],
                       tmp / "redis.out")
    wait_port(port, proc, "redis-server")
    return proc, port


def start_nginx(procs, tmp, taken, origin_port, workers):
    port = free_port(taken)
    d = tmp / "nginx"
    (d / "temp").mkdir(parents=True)
    os.chmod(d / "temp", 0o777)
    conf = f"""
daemon off;
worker_processes {workers};
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {d}/temp/body;
    proxy_temp_path {d}/temp/proxy;
    upstream origin {{
        server 127.0.0.1:{origin_port};
        keepalive 128;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # Stream large bodies to the client instead of spooling them to disk.
            proxy_max_temp_file_size 0;
        }}
    }}
}}
"""
    (d / "nginx.conf").write_text(conf)
    proc = procs.start("nginx", ["nginx", "-p", str(d), "-c", str(d / "nginx.conf")],
                       d / "nginx.out")
    wait_port(port, proc, "nginx")
    return proc, port


def gateway_toml(listen, admin, db_url, s3_port, access_key, secret_key, hs_secret, redis_port,
                 threads, memory_cache=True):
    redis = f'redis_url = "redis://127.0.0.1:{redis_port}/"' if redis_port else ""
    # Limits high enough never to refuse the load itself: what is measured is their cost.
    limits = f"""
[limits]
{redis}
user_per_minute = 1000000000
ip_per_minute = 1000000000
burst = 1000000000
max_concurrent_per_user = 100000
"""
    return f"""
[server]
listen = "127.0.0.1:{listen}"
admin_listen = "127.0.0.1:{admin}"
threads = {threads}
grace_period_s = 1

[app]
upstream = "127.0.0.1:9"

[auth]
algorithms = ["HS256"]
hs_secret = "{hs_secret}"

[catalog]
database_url = "{db_url}"

[storage]
provider = "s3"
endpoint = "http://127.0.0.1:{s3_port}"
region = "us-east-1"
bucket = "{BUCKET}"
path_style = true
access_key_id = "{access_key}"
secret_access_key = "{secret_key}"
read_timeout_ms = 60000
{"" if memory_cache else "memory_cache_bytes = 0"}

[http]
max_object_bytes = {2 * 1024 * MIB}
{limits}
[log]
level = "warn"
format = "text"
"""


def gateway_accepts(toml_path):
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    res = subprocess.run([str(GATEWAY), "check-config", "--config", str(toml_path)],
                         capture_output=True, text=True, env=env)
    return res.returncode == 0, res.stdout + res.stderr


def wait_ready(admin_port, proc, within=60):
    deadline = time.monotonic() + within
    url = f"http://127.0.0.1:{admin_port}/readyz"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the gateway exited; see gateway.out")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("the gateway never became ready")


# ---------------------------------------------------------------- load


def probe(port, path, headers):
    """One request: (status, ETag, body length), to check each target serves what we think."""
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path, headers=headers)
    resp = conn.getresponse()
    n = 0
    while chunk := resp.read(MIB):
        n += len(chunk)
    conn.close()
    return resp.status, resp.getheader("ETag"), n


def run_wrk(url, headers, duration, conns, threads, env_extra=None):
    args = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{duration}s", "--timeout", "60s",
            "-s", str(HERE / "bench.lua")]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    args.append(url)
    out = subprocess.run(args, capture_output=True, text=True,
                         env={**os.environ, **(env_extra or {})}, timeout=duration + 120)
    for line in out.stdout.splitlines():
        if line.startswith("WRK "):
            fields = dict(kv.split("=") for kv in line[4:].split())
            r = {k: int(v) for k, v in fields.items()}
            secs = r["duration_us"] / 1e6
            errors = sum(v for k, v in r.items() if k.startswith("err_"))
            return {"rps": r["requests"] / secs, "mbps": r["bytes"] / secs / MIB,
                    "p50_ms": r["p50_us"] / 1000, "p99_ms": r["p99_us"] / 1000,
                    "requests": r["requests"], "errors": errors,
                    "error_detail": {k: v for k, v in r.items() if k.startswith("err_") and v}}
    raise SystemExit(f"wrk printed no summary:\n{out.stdout}\n{out.stderr}")


def run_curl(url, headers):
    """One full download to /dev/null: MB/s and time to first byte."""
    args = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{speed_download} "
            "%{time_starttransfer} %{time_total} %{size_download}"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    out = subprocess.run(args + [url], capture_output=True, text=True, timeout=600).stdout
    code, speed, ttfb, total, size = out.split()
    return {"rps": 1 / float(total), "mbps": float(speed) / MIB, "p50_ms": float(ttfb) * 1000,
            "p99_ms": float(ttfb) * 1000, "requests": 1, "errors": int(code != "200"),
            "bytes": int(size), "status": int(code)}


async def slow_readers(port, path, headers, n, seconds, rcvbuf=8192, chunk=4096, every=0.1):
    """`n` clients that each read `chunk` bytes every `every` seconds through a small receive
    window, for `seconds`: the server must hold every response open without buffering it."""
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + seconds
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    ttfbs, statuses, received, failures = [], {}, [0], [0]

    async def one(i):
        await asyncio.sleep(i * 0.002)  # spread the connects over about a second
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        writer = None
        try:
            t0 = time.monotonic()
            await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", port)), 10)
            reader, writer = await asyncio.open_connection(sock=sock, limit=2 * chunk)
            writer.write(request.encode())
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            ttfbs.append(time.monotonic() - t0)
            status = int(head.split(b" ", 2)[1])
            statuses[status] = statuses.get(status, 0) + 1
            while time.monotonic() < deadline:
                data = await asyncio.wait_for(reader.read(chunk), 30)
                if not data:
                    break
                received[0] += len(data)
                await asyncio.sleep(every)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError):
            failures[0] += 1
        finally:
            if writer is not None:
                writer.close()
            else:
                sock.close()

    start = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(n)))
    secs = time.monotonic() - start
    ttfbs.sort()
    pick = (lambda q: ttfbs[min(len(ttfbs) - 1, int(q * len(ttfbs)))] * 1000) if ttfbs else (
        lambda q: float("nan"))
    return {"rps": len(ttfbs) / secs, "mbps": received[0] / secs / MIB, "p50_ms": pick(0.5),
            "p99_ms": pick(0.99), "requests": len(ttfbs), "errors": failures[0],
            "statuses": statuses}


def redis_calls(port):
    """Per-command call counts of the benchmark's own Redis (`INFO commandstats`)."""
    out = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port), "INFO",
                          "commandstats"], capture_output=True, text=True).stdout
    calls = {}
    for line in out.splitlines():
        if line.startswith("cmdstat_"):
            name, rest = line[len("cmdstat_"):].split(":", 1)
            calls[name] = int(rest.split(",")[0].split("=")[1])
    return calls


def redis_round_trips(redis_port, gw_port, path, headers, n=200):
    """Exact Redis round trips per gateway request: MONITOR while `n` sequential requests are
    served; commands a Lua script runs inside Redis show as `[db lua]` and are no round trip."""
    import http.client
    mon = subprocess.Popen(["redis-cli", "-h", "127.0.0.1", "-p", str(redis_port), "monitor"],
                           stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)
    conn = http.client.HTTPConnection("127.0.0.1", gw_port, timeout=30)
    for _ in range(n):
        conn.request("GET", path, headers=headers)
        conn.getresponse().read()
    conn.close()
    time.sleep(0.5)
    mon.terminate()
    lines = [l for l in mon.communicate()[0].splitlines() if l[:1].isdigit()]
    top = [l.split("]", 1)[1].split()[0].strip('"').upper() for l in lines if "lua]" not in l]
    by_cmd = {}
    for cmd in top:
        by_cmd[cmd] = by_cmd.get(cmd, 0) + 1
    inner = len(lines) - len(top)
    detail = ", ".join(f"{k} {v / n:.2f}" for k, v in sorted(by_cmd.items()))
    # Requests served while the limiter backs off after a slow Redis call make no round trip:
    # judge the requests that did consult Redis (one check script each).
    consulted = by_cmd.get("EVALSHA", 0) + by_cmd.get("EVAL", 0)
    per_consulted = len(top) / consulted if consulted else len(top) / n
    return per_consulted, (
        f"{per_consulted:.2f} round trips per request that consults Redis; {consulted / n:.0%} "
        f"of {n} sequential requests did (per request: {detail}; plus {inner / n:.2f} commands "
        "run inside Lua scripts)")


# ---------------------------------------------------------------- report


def fmt_row(scenario, target, r, unit, ratios):
    tput = f"{r['mbps']:.1f} MB/s" if unit == "mbps" else f"{r['rps']:.0f} req/s"
    g_n, g_o = ratios
    cells = [scenario, target, tput, f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}",
             f"{r['peak_rss_kib'] / 1024:.1f}", str(r["errors"]),
             g_n if target == "gateway" else "", g_o if target == "gateway" else ""]
    return "| " + " | ".join(cells) + " |"


def table(results, scenarios):
    lines = ["| scenario | server | throughput | p50 ms | p99 ms | peak RSS MiB | errors "
             "| gw/nginx | gw/origin |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, unit, _ in scenarios:
        rows = results.get(name, {})
        key = "mbps" if unit == "mbps" else "rps"
        gw = rows.get("gateway")
        ratio = lambda other: (f"{gw[key] / rows[other][key]:.2f}x"
                               if gw and other in rows and rows[other][key] else "")
        for target in TARGETS:
            if target in rows:
                lines.append(fmt_row(name, target, rows[target], unit,
                                     (ratio("nginx"), ratio("origin"))))
    return "\n".join(lines)


def verdicts(results, limiter):
    def get(s, t, k):
        return results.get(s, {}).get(t, {}).get(k)

    out = []

    def check(label, ok, detail):
        state = "n/a " if ok is None else ("MET " if ok else "MISS")
        out.append(f"- [{state}] {label}: {detail}")

    gw, ng = get("small_200", "gateway", "rps"), get("small_200", "nginx", "rps")
    check("small-object throughput >= nginx (no auth)", gw and ng and gw >= ng,
          f"gateway {gw or 0:.0f} req/s vs nginx {ng or 0:.0f} req/s")
    g304 = get("small_304", "gateway", "rps")
    check("304 throughput >= 2x the 200 path", g304 and gw and g304 >= 2 * gw,
          f"{g304 or 0:.0f} vs 2 x {gw or 0:.0f} req/s")
    gv, ov = get("video_256m", "gateway", "mbps"), get("video_256m", "origin", "mbps")
    check("large-object MB/s >= 0.9x bare origin", gv and ov and gv >= 0.9 * ov,
          f"gateway {gv or 0:.1f} vs origin {ov or 0:.1f} MB/s ({(gv or 0) / (ov or 1):.2f}x)")
    r1 = get("stream_1g", "gateway", "peak_rss_kib")
    check("peak RSS < 64 MiB streaming 1 GiB", None if r1 is None else r1 < 64 * 1024,
          f"{(r1 or 0) / 1024:.1f} MiB")
    r5 = get("slow_500", "gateway", "peak_rss_kib")
    check("peak RSS < 256 MiB with 500 slow readers", None if r5 is None else r5 < 256 * 1024,
          f"{(r5 or 0) / 1024:.1f} MiB")
    if limiter is None:
        check("limiter: one Redis round trip per request", None,
              "no Redis limiter in this build/config: ran without it")
    else:
        per_req, detail = limiter
        check("limiter: one Redis round trip per request",
              None if per_req is None else per_req <= 1.0, detail)
    return "\n".join(out)


def machine():
    model = "unknown CPU"
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kib = int(open("/proc/meminfo").readline().split()[1])
    versions = []
    for cmd in (["nginx", "-v"], ["weed", "version"], ["wrk", "-v"]):
        res = subprocess.run(cmd, capture_output=True, text=True)
        first = (res.stdout + res.stderr).strip().splitlines()
        versions.append(first[0] if first else cmd[0])
    return (f"{os.cpu_count()} x {model}, {mem_kib / 1024 / 1024:.0f} GiB RAM, Linux "
            f"{os.uname().release}; " + "; ".join(versions))


# ---------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--slow-readers", type=int, default=500)
    ap.add_argument("--slow-seconds", type=int, default=15)
    ap.add_argument("--only", help="comma-separated scenario names")
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument("--no-limits", action="store_true", help="run the gateway without Redis")
    ap.add_argument("--no-memory-cache", action="store_true",
                    help="storage.memory_cache_bytes = 0: every small read goes to the origin")
    ap.add_argument("--perf", action="store_true",
                    help="record the gateway with `perf record -g` during each gateway run")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (configs, logs)")
    ap.add_argument("--out", default=str(ROOT / "target" / "load"), help="results directory")
    args = ap.parse_args()

    for tool in ["weed", "nginx", "wrk", "curl", "psql", "redis-server", "redis-cli"]:
        if not shutil.which(tool):
            raise SystemExit(f"`{tool}` is missing: run benches/load/run.sh, which installs it")
    for binary in [GATEWAY, SEEDER]:
        if not binary.exists():
            raise SystemExit(f"{binary} is missing: cargo build --release --bin "
                             "attachment-gateway --example load_seed")

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="gw-load-"))
    procs = Procs()
    taken = set()
    db = f"gw_bench_{secrets.token_hex(6)}"
    threads = os.cpu_count() or 2
    try:
        access_key = f"AKBENCH{secrets.token_hex(4).upper()}"
        secret_key = secrets.token_hex(20)
        seaweed, weed_ports = start_seaweed(procs, tmp, taken, access_key, secret_key)
        s3 = weed_ports["s3"]
        subprocess.run(PG_ADMIN + [f"CREATE DATABASE {db}"], check=True)
        db_url = f"postgres://postgres@127.0.0.1:5432/{db}"

        redis_port = None
        if not args.no_limits:
            redis, redis_port = start_redis(procs, tmp, taken)
        gw_port, admin_port = free_port(taken), free_port(taken)
        hs_secret = secrets.token_hex(24)
        toml_path = tmp / "gateway.toml"
        toml_path.write_text(gateway_toml(gw_port, admin_port, db_url, s3, access_key,
                                          secret_key, hs_secret, redis_port, threads,
                                          not args.no_memory_cache))
        ok, why = gateway_accepts(toml_path)
        if not ok and redis_port:
            log("this build does not accept [limits] redis_url; running without the limiter:\n"
                + why)
            redis_port = None
            toml_path.write_text(gateway_toml(gw_port, admin_port, db_url, s3, access_key,
                                              secret_key, hs_secret, None, threads,
                                              not args.no_memory_cache))
            ok, why = gateway_accepts(toml_path)
        if not ok:
            raise SystemExit(f"gateway config refused:\n{why}")

        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        subprocess.run([str(GATEWAY), "migrate", "--config", str(toml_path)], check=True,
                       env=env, stdout=subprocess.DEVNULL)
        log("seeding: uploading 8 KiB, 256 MiB and 1 GiB objects through signed S3 PUTs")
        seeded = subprocess.run([str(SEEDER), str(toml_path)], check=True, env=env,
                                capture_output=True, text=True).stdout
        token = next(l.split("=", 1)[1] for l in seeded.splitlines() if l.startswith("token="))

        gateway = procs.start("gateway", [str(GATEWAY), "run", "--config", str(toml_path)],
                              tmp / "gateway.out", env=env)
        wait_ready(admin_port, gateway)
        nginx, nginx_port = start_nginx(procs, tmp, taken, s3, threads)

        servers = {
            "origin": (seaweed.pid, s3, lambda oid: f"/{BUCKET}/support-chat/dialogs/{DIALOG}/{oid}", {}),
            "nginx": (nginx.pid, nginx_port, lambda oid: f"/{BUCKET}/support-chat/dialogs/{DIALOG}/{oid}", {}),
            "gateway": (gateway.pid, gw_port, lambda oid: f"/api/support-chat/attachments/{DIALOG}/{oid}",
                        {"Authorization": f"Bearer {token}"}),
        }
        servers = {t: servers[t] for t in args.targets.split(",")}
        etags = {}
        for target, (_, port, path, headers) in servers.items():
            status, etag, n = probe(port, path("img8k"), headers)
            if status != 200 or n != SIZES["img8k"]:
                raise SystemExit(f"{target}: GET img8k answered {status} with {n} bytes")
            etags[target] = etag
            log(f"{target}: 127.0.0.1:{port} ok, ETag {etag}")

        d, c = args.duration, args.connections
        # name, unit, how to run it against one target
        scenarios = [
            ("small_200", "rps", lambda t, port, path, h: run_wrk(
                f"http://127.0.0.1:{port}{path('img8k')}", h, d, c, 2)),
            ("small_304", "rps", lambda t, port, path, h: run_wrk(
                f"http://127.0.0.1:{port}{path('img8k')}", {**h, "If-None-Match": etags[t]},
                d, c, 2)),
            ("video_256m", "mbps", lambda t, port, path, h: run_wrk(
                f"http://127.0.0.1:{port}{path('video256m')}", h, d, 4, 1)),
            ("range_64k", "rps", lambda t, port, path, h: run_wrk(
                f"http://127.0.0.1:{port}{path('video256m')}", h, d, c, 2,
                {"RANGE_OBJECT_SIZE": str(SIZES["video256m"])})),
            ("stream_1g", "mbps", lambda t, port, path, h: run_curl(
                f"http://127.0.0.1:{port}{path('big1g')}", h)),
            ("slow_500", "mbps", lambda t, port, path, h: asyncio.run(slow_readers(
                port, path("video256m"), h, args.slow_readers, args.slow_seconds))),
        ]
        if args.only:
            wanted = args.only.split(",")
            scenarios = [s for s in scenarios if s[0] in wanted]

        results, limiter_calls, limiter_requests, limiter = {}, {}, 0, None
        load_before = open("/proc/loadavg").read().split()[0]
        for name, unit, run in scenarios:
            results[name] = {}
            for target, (pid, port, path, headers) in servers.items():
                time.sleep(1)  # let the previous run's connections close
                reset_peak_rss(pid)
                before = redis_calls(redis_port) if redis_port and target == "gateway" else None
                perf = None
                if args.perf and target == "gateway":
                    perf = subprocess.Popen(
                        ["perf", "record", "-F", "999", "-g", "-p", str(pid), "-o",
                         str(out_dir / f"perf-{name}.data")],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                r = run(target, port, path, headers)
                if perf:
                    perf.send_signal(signal.SIGINT)
                    perf.wait()
                r["peak_rss_kib"] = peak_rss_kib(pid)
                if before is not None and name in ("small_200", "range_64k"):
                    after = redis_calls(redis_port)
                    for cmd, n in after.items():
                        limiter_calls[cmd] = limiter_calls.get(cmd, 0) + n - before.get(cmd, 0)
                    limiter_requests += r["requests"]
                results[name][target] = r
                if redis_port and target == "gateway" and name == "small_200":
                    # Right after the plain small-object load, before slow readers can leave
                    # the limiter in its Redis-error fallback; after its 1 s back-off.
                    time.sleep(2)
                    per_req, detail = redis_round_trips(redis_port, port, path("img8k"), headers)
                    limiter = (per_req if per_req > 0 else None, detail if per_req > 0 else
                               "limits configured, but the gateway sent Redis no command")
                log(f"{name:11} {target:8} {r['rps']:9.1f} req/s {r['mbps']:9.1f} MB/s "
                    f"p50 {r['p50_ms']:8.2f} ms p99 {r['p99_ms']:8.2f} ms "
                    f"rss {r['peak_rss_kib'] / 1024:7.1f} MiB errors {r['errors']} "
                    f"{r.get('error_detail') or r.get('statuses') or ''}")

        if redis_port and "gateway" in servers:
            if limiter_requests:
                calls = {k: v for k, v in limiter_calls.items() if v > 0 and k != "info"}
                log("commandstats per request during small_200/range_64k: " + ", ".join(
                    f"{k} {v / limiter_requests:.2f}" for k, v in calls.items()))

        fallbacks = sum("redis call failed" in line for line in
                        (tmp / "gateway.out").read_text(errors="replace").splitlines())
        if redis_port:
            log(f"gateway log: {fallbacks} 'redis call failed' warnings (each = 1 s of local "
                "limits)")
        report = "\n".join([
            f"## Load test ({time.strftime('%Y-%m-%d %H:%M')}; {d} s per wrk run, "
            f"{c} connections; {args.slow_readers} slow readers for {args.slow_seconds} s)",
            "", f"Machine: {machine()}; load average before/after: {load_before} / "
            f"{open('/proc/loadavg').read().split()[0]}", "",
            f"Gateway limiter: {'Redis (own redis-server)' if redis_port else 'not configured'}"
            + (f"; {fallbacks} Redis-failure fallbacks logged" if redis_port else ""),
            "", "Gateway small-body memory cache: "
            + ("off (--no-memory-cache)" if args.no_memory_cache else
               "on (default: bodies up to 64 KiB, 32 MiB in all)"),
            "", table(results, scenarios), "", "Targets:", verdicts(results, limiter), ""])
        print(report)
        (out_dir / "report.md").write_text(report)
        (out_dir / "results.json").write_text(json.dumps(results, indent=2))
        log(f"written to {out_dir}/report.md and results.json")
    finally:
        procs.stop_all()
        subprocess.run(PG_ADMIN + [f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # weed leaves a unix socket per gRPC port in /tmp whatever TMPDIR says.
        for port in taken:
            for service in ["admin", "filer", "master", "s3", "volume"]:
                Path(f"/tmp/seaweedfs-{service}-grpc-{port}.sock").unlink(missing_ok=True)
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
