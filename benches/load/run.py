#!/usr/bin/env python3
"""Side-by-side load test of the gateway against nginx and the bare origin, for two origins.

Starts, on 127.0.0.1 only and on free ports: SeaweedFS (an S3-compatible origin, read on its S3
port with an anonymous identity), a fast static origin (a second nginx serving the same object
files from a directory, path-style like a bucket), Redis and a fresh PostgreSQL database. Then,
for each origin in turn: nginx as a plain reverse proxy to it with no auth at all (the anchor),
the release gateway with every check on (HS256 JWT, Redis-backed limits, catalog lookup,
authorization, SigV4 signing, its default memory cache) and the same gateway with in-process
limits (`gateway_nolimits`). Every server runs on the server CPU(s) and every load tool on the
load CPU(s) (taskset); PostgreSQL is the machine's own server and is not pinned. Every scenario
drives each server with the same load for a bounded time; the tables and the verdicts are
printed and written to the output directory as Markdown and JSON.

Usually started through `benches/load/run.sh`, which installs the tools and builds first.
"""

import argparse
import asyncio
import http.client
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
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
GATEWAY = ROOT / "target" / "release" / "attachment-gateway"
SEEDER = ROOT / "target" / "release" / "examples" / "load_seed"
FLOOR = ROOT / "target" / "release" / "examples" / "load_floor"
PG_ADMIN = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qAtc"]

MIB = 1024 * 1024
DIALOG = "bench-dialog"
BUCKET = "bench"
ORIGINS = ["fast", "seaweed"]
ORIGIN_WHAT = {
    "fast": "nginx serving the object files statically (sendfile)",
    "seaweed": "SeaweedFS `weed mini`, its S3 port read anonymously",
}
TARGETS = ["origin", "nginx", "gateway", "baseline", "gateway_nolimits", "floor"]
SCENARIOS = ["small_200", "small_304", "video_256m", "range_64k", "stream_1g", "slow_200",
             "slow_500"]
DEFAULT_DURATION = 10
DEFAULT_SLOW_SECONDS = 15
# SeaweedFS's gRPC listeners sit this far above their HTTP port.
GRPC_OFFSET = 10_000


def log(msg):
    print(f"[load] {msg}", file=sys.stderr, flush=True)


def object_path(oid):
    """An object's path on an origin (and on the nginx proxy in front of it): path-style S3."""
    return f"/{BUCKET}/support-chat/dialogs/{DIALOG}/{oid}"


def gateway_path(oid):
    return f"/api/support-chat/attachments/{DIALOG}/{oid}"


def parse_cpus(spec):
    """A taskset-style CPU list ("1", "0-3", "0,2") as a set of CPU numbers."""
    cpus = set()
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        cpus.update(range(int(lo), int(hi or lo) + 1))
    return cpus


def cpu_list(cpus):
    return ",".join(str(c) for c in sorted(cpus))


@dataclass
class Target:
    """One server under load: where it listens, how its objects are named and asked for."""
    name: str
    pid: int
    port: int
    path: Callable[[str], str]
    headers: dict
    # The directory the "no temp files" check watches (a proxy's own temp dir or TMPDIR).
    temp_dir: Optional[Path] = None
    log_path: Optional[Path] = None  # a gateway's log, read for limiter fallbacks
    etag: Optional[str] = None


@dataclass
class Shared:
    """What every gateway of the run shares: catalog, S3 identity, token secret, tuning."""
    db_url: str
    access_key: str
    secret_key: str
    hs_secret: str
    threads: int
    memory_cache: bool


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
    """Every server this run started, each in its own process group and pinned to the server
    CPUs with taskset (children such as nginx workers inherit it), stopped at the end."""

    def __init__(self, cpus):
        self.cpus = cpus
        self.procs = {}

    def start(self, name, args, log_path, **kw):
        out = open(log_path, "wb")
        proc = subprocess.Popen(
            ["taskset", "-c", cpu_list(self.cpus)] + [str(a) for a in args],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, **kw)
        self.procs[name] = proc
        return proc

    def stop(self, name):
        proc = self.procs.pop(name)
        for sig, wait in [(signal.SIGTERM, 10), (signal.SIGKILL, None)]:
            if proc.poll() is not None:
                return
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                proc.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                pass

    def stop_all(self):
        for name in reversed(list(self.procs)):
            self.stop(name)

    def check_pinning(self):
        """Every thread of every running server may run on the server CPUs only."""
        for name, proc in self.procs.items():
            for pid in process_tree(proc.pid):
                try:
                    tids = os.listdir(f"/proc/{pid}/task")
                except OSError:
                    continue  # gone meanwhile
                for tid in tids:
                    allowed = proc_status(f"/proc/{pid}/task/{tid}/status", "Cpus_allowed_list")
                    if allowed is not None and parse_cpus(allowed) != self.cpus:
                        raise SystemExit(f"{name}: thread {tid} may run on CPUs {allowed}")


def proc_status(path, field):
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


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
        hwm = proc_status(f"/proc/{pid}/status", "VmHWM")
        total += int(hwm.split()[0]) if hwm else 0
    return total


# ---------------------------------------------------------------- temp files


def temp_usage(temp_dir, root_pid):
    """(files, bytes) under `temp_dir`: the files in it, plus those the server's processes
    still hold open after unlinking them (a spooling proxy's temp files look like that)."""
    sizes = {}
    for dirpath, _, names in os.walk(temp_dir):
        for name in names:
            try:
                st = os.stat(os.path.join(dirpath, name))
            except OSError:
                continue
            sizes[(st.st_dev, st.st_ino)] = st.st_size
    prefix = f"{temp_dir}/"
    for pid in process_tree(root_pid):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            link = f"/proc/{pid}/fd/{fd}"
            try:
                if os.readlink(link).startswith(prefix):
                    st = os.stat(link)
                    sizes[(st.st_dev, st.st_ino)] = st.st_size
            except OSError:
                continue
    return len(sizes), sum(sizes.values())


class TempWatch(threading.Thread):
    """Samples a server's temp dir while one run lasts: files deleted when their response ends
    would not be seen by a look afterwards."""

    def __init__(self, target):
        super().__init__(daemon=True)
        self.target = target
        self.peak_files = self.peak_bytes = 0
        self.stopping = threading.Event()
        self.start()

    def run(self):
        while True:
            files, size = temp_usage(self.target.temp_dir, self.target.pid)
            self.peak_files = max(self.peak_files, files)
            self.peak_bytes = max(self.peak_bytes, size)
            if self.stopping.wait(0.5):
                return

    def finish(self):
        self.stopping.set()
        self.join()
        files, size = temp_usage(self.target.temp_dir, self.target.pid)
        return {"peak_files": max(self.peak_files, files), "peak_bytes": max(self.peak_bytes, size),
                "files_after": files, "bytes_after": size}


# ---------------------------------------------------------------- the servers


def start_seaweed(procs, tmp, taken, access_key, secret_key):
    ports = {name: free_port(taken, grpc_twin=True)
             for name in ["s3", "master", "volume", "filer", "admin"]}
    d = tmp / "weed"
    d.mkdir()
    identities = {"identities": [
        {"name": "gateway", "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
         "actions": ["Admin", "Read", "Write", "List"]},
        # nginx, the bare-origin runs and the static copy read without any signature:
        # SeaweedFS's special "anonymous" identity gets Read (and nothing else).
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
    return Target("origin", proc.pid, ports["s3"], object_path, {})


def start_redis(procs, tmp, taken):
    port = free_port(taken)
    proc = procs.start("redis", ["redis-server", "--bind", "127.0.0.1", "--port", str(port),
                                 "--save", "", "--appendonly", "no", "--dir", str(tmp)],
                       tmp / "redis.out")
    wait_port(port, proc, "redis-server")
    return port


def start_nginx(procs, name, d, taken, workers, http_extra, server_body):
    """nginx with one config shape for both roles; `temp/` is where it would spool bodies."""
    port = free_port(taken)
    temp = d / "temp"
    temp.mkdir(parents=True)
    os.chmod(temp, 0o777)  # the workers run as nobody
    conf = f"""
daemon off;
worker_processes {workers};
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
{http_extra}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
{server_body}
    }}
}}
"""
    (d / "nginx.conf").write_text(conf)
    proc = procs.start(name, ["nginx", "-p", d, "-c", d / "nginx.conf"], d / "nginx.out")
    wait_port(port, proc, name)
    return proc, port, temp


def start_static_origin(procs, d, taken, workers, root):
    http_extra = """
    sendfile on;
    tcp_nopush on;
    open_file_cache max=64;
"""
    # The gateway asks for the bucket itself twice: `HEAD /{BUCKET}` is its storage ping
    # (/readyz), `GET /{BUCKET}?list-type=2` its cleanup pass, which an empty listing ends.
    listing = ('<?xml version="1.0" encoding="UTF-8"?><ListBucketResult '
               f'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>{BUCKET}</Name>'
               '<KeyCount>0</KeyCount><IsTruncated>false</IsTruncated></ListBucketResult>')
    server_body = f"""
        root {root};
        location = /{BUCKET} {{
            default_type application/xml;
            return 200 '{listing}';
        }}
"""
    proc, port, _ = start_nginx(procs, "fast-origin", d, taken, workers, http_extra, server_body)
    return Target("origin", proc.pid, port, object_path, {})


def start_proxy(procs, origin, d, taken, workers, origin_port):
    http_extra = f"""
    upstream origin {{
        server 127.0.0.1:{origin_port};
        keepalive 128;
    }}
"""
    server_body = """
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # Stream large bodies to the client instead of spooling them to disk.
            proxy_max_temp_file_size 0;
        }
"""
    proc, port, temp = start_nginx(procs, f"{origin}-nginx", d, taken, workers, http_extra,
                                   server_body)
    return Target("nginx", proc.pid, port, object_path, {}, temp_dir=temp)


def start_floor(procs, origin, d, taken, origin_port):
    """Pingora with none of the gateway's work (benches/load/floor.rs): answers a 304 itself,
    proxies everything else to the origin."""
    d.mkdir(parents=True)
    port = free_port(taken)
    log_path = d / "floor.out"
    proc = procs.start(f"{origin}-floor", [FLOOR, f"127.0.0.1:{port}", f"127.0.0.1:{origin_port}"],
                       log_path, env=gateway_env())
    wait_port(port, proc, "floor")
    return Target("floor", proc.pid, port, object_path, {})


def gateway_toml(listen, admin, origin_port, redis_port, shared):
    redis = f'redis_url = "redis://127.0.0.1:{redis_port}/"' if redis_port else ""
    # Limits high enough never to refuse the load itself: what is measured is their cost.
    # Without `redis_url` the same limits are kept in process.
    return f"""
[server]
listen = "127.0.0.1:{listen}"
admin_listen = "127.0.0.1:{admin}"
threads = {shared.threads}
grace_period_s = 1

[app]
upstream = "127.0.0.1:9"

[auth]
algorithms = ["HS256"]
hs_secret = "{shared.hs_secret}"

[catalog]
database_url = "{shared.db_url}"

[storage]
provider = "s3"
endpoint = "http://127.0.0.1:{origin_port}"
region = "us-east-1"
bucket = "{BUCKET}"
path_style = true
access_key_id = "{shared.access_key}"
secret_access_key = "{shared.secret_key}"
read_timeout_ms = 60000
{"" if shared.memory_cache else "memory_cache_bytes = 0"}

[http]
max_object_bytes = {2 * 1024 * MIB}

[limits]
{redis}
user_per_minute = 1000000000
ip_per_minute = 1000000000
burst = 1000000000
max_concurrent_per_user = 100000

[log]
level = "warn"
format = "text"
"""


def gateway_env(**extra):
    # DATABASE_URL in the environment would override the config's own database.
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    return {**env, **extra}


def write_gateway_config(path, *toml_args):
    path.write_text(gateway_toml(*toml_args))
    res = subprocess.run([GATEWAY, "check-config", "--config", path], capture_output=True,
                         text=True, env=gateway_env())
    if res.returncode != 0:
        raise SystemExit(f"gateway config {path} refused:\n{res.stdout}{res.stderr}")


def wait_ready(admin_port, proc, log_path, within=60):
    deadline = time.monotonic() + within
    url = f"http://127.0.0.1:{admin_port}/readyz"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the gateway exited; see {log_path}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the gateway never became ready; see {log_path}")


def start_gateway(procs, name, proc_name, d, taken, origin_port, redis_port, shared, token,
                  binary=GATEWAY):
    """One gateway process with its own ports, log and empty TMPDIR (the "no temp files"
    check looks there); `binary` is another build of it for the `baseline` target."""
    port, admin = free_port(taken), free_port(taken)
    tmpdir = d / "tmp"
    tmpdir.mkdir(parents=True)
    toml = d / "gateway.toml"
    write_gateway_config(toml, port, admin, origin_port, redis_port, shared)
    log_path = d / "gateway.out"
    proc = procs.start(proc_name, [binary, "run", "--config", toml], log_path,
                       env=gateway_env(TMPDIR=str(tmpdir)))
    wait_ready(admin, proc, log_path)
    return Target(name, proc.pid, port, gateway_path, {"Authorization": f"Bearer {token}"},
                  temp_dir=tmpdir, log_path=log_path)


# ---------------------------------------------------------------- seeding


def seed(tmp, taken, origin_port, redis_port, shared):
    """Migrate the fresh database and upload the objects through the gateway's own S3 client:
    the object sizes by id, and a bearer token for the dialog's owner."""
    toml = tmp / "seed.toml"
    write_gateway_config(toml, free_port(taken), free_port(taken), origin_port, redis_port,
                         shared)
    subprocess.run([GATEWAY, "migrate", "--config", toml], check=True, env=gateway_env(),
                   stdout=subprocess.DEVNULL)
    log("seeding: uploading 8 KiB, 256 MiB and 1 GiB objects through signed S3 PUTs")
    out = subprocess.run([SEEDER, toml], check=True, env=gateway_env(), capture_output=True,
                         text=True).stdout.splitlines()
    objects = {}
    for line in out:
        if line.startswith("object="):
            oid, size = line[len("object="):].split()
            objects[oid] = int(size)
    token = next(line.split("=", 1)[1] for line in out if line.startswith("token="))
    return objects, token


def copy_objects(seaweed, objects, root):
    """The seeded objects as plain files for the static origin, each downloaded anonymously
    from SeaweedFS, so both origins serve the same bytes under the same paths."""
    for oid, size in objects.items():
        path = root / object_path(oid).lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["curl", "-sf", "--max-time", "300", "-o", path,
                        f"http://127.0.0.1:{seaweed.port}{seaweed.path(oid)}"], check=True)
        if path.stat().st_size != size:
            raise SystemExit(f"copy of {oid}: {path.stat().st_size} bytes, not {size}")
    # nginx's workers run as nobody: they must be able to read the files whatever the umask.
    for dirpath, _, filenames in os.walk(root):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o644)


# ---------------------------------------------------------------- load


def probe(port, path, headers):
    """One request: (status, ETag, body length)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path, headers=headers)
    resp = conn.getresponse()
    n = 0
    while chunk := resp.read(MIB):
        n += len(chunk)
    conn.close()
    return resp.status, resp.getheader("ETag"), n


def check_target(origin, t, objects):
    """Before any load: the target serves the small object whole, answers its own ETag with
    304 and a 64 KiB range with 206, so that no scenario measures error answers."""
    status, etag, n = probe(t.port, t.path("img8k"), t.headers)
    if status != 200 or n != objects["img8k"] or not etag:
        raise SystemExit(f"{origin} {t.name}: GET img8k answered {status}, {n} bytes, ETag {etag}")
    status, _, _ = probe(t.port, t.path("img8k"), {**t.headers, "If-None-Match": etag})
    if status != 304:
        raise SystemExit(f"{origin} {t.name}: If-None-Match {etag} answered {status}")
    status, _, n = probe(t.port, t.path("video256m"), {**t.headers, "Range": "bytes=65536-131071"})
    if status != 206 or n != 65536:
        raise SystemExit(f"{origin} {t.name}: a 64 KiB range answered {status}, {n} bytes")
    t.etag = etag
    log(f"{origin} {t.name}: 127.0.0.1:{t.port} ok, ETag {etag}")


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
    args = ["curl", "-s", "--max-time", "300", "-o", "/dev/null", "-w",
            "%{http_code} %{speed_download} %{time_starttransfer} %{time_total} %{size_download}"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    out = subprocess.run(args + [url], capture_output=True, text=True, timeout=360).stdout
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
    # A non-200 answer is an error too: it holds no body open.
    wrong = sum(v for k, v in statuses.items() if k != 200)
    return {"rps": len(ttfbs) / secs, "mbps": received[0] / secs / MIB, "p50_ms": pick(0.5),
            "p99_ms": pick(0.99), "requests": len(ttfbs), "errors": failures[0] + wrong,
            "statuses": statuses}


def redis_round_trips(redis_port, gw, n=200):
    """Exact Redis round trips per gateway request: MONITOR while `n` sequential requests are
    served; commands a Lua script runs inside Redis show as `[db lua]` and are no round trip."""
    mon = subprocess.Popen(["redis-cli", "-h", "127.0.0.1", "-p", str(redis_port), "monitor"],
                           stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=30)
    for _ in range(n):
        conn.request("GET", gw.path("img8k"), headers=gw.headers)
        conn.getresponse().read()
    conn.close()
    time.sleep(0.5)
    mon.terminate()
    lines = [l for l in mon.communicate()[0].splitlines() if l[:1].isdigit()]
    top = [l.split("]", 1)[1].split()[0].strip('"').upper() for l in lines if "lua]" not in l]
    by_cmd = {}
    for cmd in top:
        by_cmd[cmd] = by_cmd.get(cmd, 0) + 1
    if not top:
        return "limits configured, but the gateway sent Redis no command"
    inner = len(lines) - len(top)
    detail = ", ".join(f"{k} {v / n:.2f}" for k, v in sorted(by_cmd.items()))
    # Requests served while the limiter backs off after a slow Redis call make no round trip:
    # judge the requests that did consult Redis (one check script each).
    consulted = by_cmd.get("EVALSHA", 0) + by_cmd.get("EVAL", 0)
    per_consulted = len(top) / consulted if consulted else len(top) / n
    return (f"{per_consulted:.2f} round trips per request that consults Redis; "
            f"{consulted / n:.0%} of {n} sequential requests did (per request: {detail}; "
            f"plus {inner / n:.2f} commands run inside Lua scripts)")


@dataclass
class Scenario:
    name: str
    unit: str  # what the summary compares: "rps", "mbps" or "rss" (peak RSS)
    run: Callable[[Target], dict]


def scenarios(args, objects, wrk_threads):
    d, c, s = args.duration, args.connections, args.slow_seconds

    def url(t, oid):
        return f"http://127.0.0.1:{t.port}{t.path(oid)}"

    def slow(n):
        return lambda t: asyncio.run(slow_readers(t.port, t.path("video256m"), t.headers, n, s))

    every = [
        Scenario("small_200", "rps", lambda t: run_wrk(url(t, "img8k"), t.headers, d, c,
                                                       wrk_threads)),
        Scenario("small_304", "rps", lambda t: run_wrk(
            url(t, "img8k"), {**t.headers, "If-None-Match": t.etag}, d, c, wrk_threads)),
        Scenario("video_256m", "mbps", lambda t: run_wrk(url(t, "video256m"), t.headers, d, 4, 1)),
        Scenario("range_64k", "rps", lambda t: run_wrk(
            url(t, "video256m"), t.headers, d, c, wrk_threads,
            {"RANGE_OBJECT_SIZE": str(objects["video256m"])})),
        Scenario("stream_1g", "mbps", lambda t: run_curl(url(t, "big1g"), t.headers)),
        Scenario("slow_200", "rss", slow(200)),
        Scenario("slow_500", "rss", slow(500)),
    ]
    if args.only:
        wanted = args.only.split(",")
    else:
        wanted = [n for n in SCENARIOS if not (args.quick and n == "stream_1g")]
    return [sc for sc in every if sc.name in wanted]


def measure(sc, t, origin, args, out_dir):
    """One scenario against one target, with that run's own peak RSS, and for the slow
    readers what the target wrote to its temp dir meanwhile."""
    time.sleep(1)  # let the previous run's connections close
    reset_peak_rss(t.pid)
    perf = None
    if args.perf and t.name == "gateway":
        perf = subprocess.Popen(
            ["perf", "record", "-F", "999", "-g", "-p", str(t.pid), "-o",
             str(out_dir / f"perf-{origin}-{sc.name}.data")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    watch = TempWatch(t) if sc.unit == "rss" and t.temp_dir else None
    try:
        r = sc.run(t)
    finally:
        if perf:
            perf.send_signal(signal.SIGINT)
            perf.wait(timeout=60)
        temp = watch.finish() if watch else None
    r["peak_rss_kib"] = peak_rss_kib(t.pid)
    if temp:
        r["temp_files"] = temp
    log(f"{origin:7} {sc.name:10} {t.name:16} {r['rps']:9.1f} req/s {r['mbps']:8.1f} MB/s "
        f"p50 {r['p50_ms']:8.2f} ms p99 {r['p99_ms']:8.2f} ms "
        f"rss {r['peak_rss_kib'] / 1024:7.1f} MiB errors {r['errors']} "
        f"{r.get('error_detail') or r.get('statuses') or ''}")
    return r


# ---------------------------------------------------------------- one origin


def start_targets(procs, origin, origin_target, tmp, taken, workers, redis_port, shared, token,
                  wanted, baseline):
    """The wanted targets of one origin, in TARGETS order: the origin itself, the nginx proxy
    in front of it, and the two gateways (Redis limits, in-process limits) reading from it;
    with `baseline` (another build's binary, `--baseline`), that build too, configured exactly
    as `gateway` and measured right after it, for a before/after in one run.
    Every process started here is named `<origin>-...`, to be stopped with the origin."""
    d = tmp / origin
    start = {
        "origin": lambda: origin_target,
        "nginx": lambda: start_proxy(procs, origin, d / "nginx", taken, workers,
                                     origin_target.port),
        "gateway": lambda: start_gateway(procs, "gateway", f"{origin}-gateway", d / "gateway",
                                         taken, origin_target.port, redis_port, shared, token),
        "baseline": lambda: start_gateway(procs, "baseline", f"{origin}-baseline",
                                          d / "baseline", taken, origin_target.port, redis_port,
                                          shared, token, baseline),
        "gateway_nolimits": lambda: start_gateway(
            procs, "gateway_nolimits", f"{origin}-gateway_nolimits", d / "gateway_nolimits",
            taken, origin_target.port, None, shared, token),
        "floor": lambda: start_floor(procs, origin, d / "floor", taken, origin_target.port),
    }
    return [start[name]() for name in TARGETS
            if name in wanted and (name != "baseline" or baseline)]


def run_origin(origin, targets, plan, objects, redis_port, args, out_dir):
    """Every scenario against every target of one origin: results by scenario and target,
    and what is reported as information (Redis round trips, limiter fallbacks)."""
    for t in targets:
        check_target(origin, t, objects)
    results, info = {}, {}
    for sc in plan:
        results[sc.name] = {}
        for t in targets:
            results[sc.name][t.name] = measure(sc, t, origin, args, out_dir)
            if t.name == "gateway" and sc.name == "small_200":
                # Right after the plain small-object load, before slow readers can leave the
                # limiter in its Redis-error fallback; after its 1 s back-off.
                time.sleep(2)
                info["redis_round_trips"] = redis_round_trips(redis_port, t)
    gw = next((t for t in targets if t.name == "gateway"), None)
    if gw:
        info["redis_fallbacks"] = sum("redis call failed" in line for line in
                                      gw.log_path.read_text(errors="replace").splitlines())
    return results, info


# ---------------------------------------------------------------- report


def metric(r, unit):
    if r is None:
        return None
    return r["peak_rss_kib"] / 1024 if unit == "rss" else r[unit]


def fmt(value, unit):
    if value is None:
        return ""
    return {"rps": f"{value:.0f} req/s", "mbps": f"{value:.1f} MB/s",
            "rss": f"{value:.1f} MiB"}[unit]


def ratio(a, b):
    return f"{a / b:.2f}x" if a is not None and b else ""


def summary_table(rows, plan):
    """One origin: the gateway against the anchor, the origin and itself with local limits."""
    lines = ["| scenario | origin | nginx proxy (anchor) | gateway | gateway / anchor "
             "| gateway / origin | limits off | limits cost | floor | floor / anchor "
             "| baseline | gateway / baseline |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for sc in plan:
        v = {t: metric(rows.get(sc.name, {}).get(t), sc.unit) for t in TARGETS}
        g = v["gateway"]
        cells = [sc.name, fmt(v["origin"], sc.unit), fmt(v["nginx"], sc.unit), fmt(g, sc.unit),
                 ratio(g, v["nginx"]), ratio(g, v["origin"]),
                 fmt(v["gateway_nolimits"], sc.unit), ratio(g, v["gateway_nolimits"]),
                 fmt(v["floor"], sc.unit), ratio(v["floor"], v["nginx"]),
                 fmt(v["baseline"], sc.unit), ratio(g, v["baseline"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def detail_table(results, plan):
    lines = ["| origin | scenario | server | throughput | p50 ms | p99 ms | peak RSS MiB "
             "| errors |", "|---|---|---|---:|---:|---:|---:|---:|"]
    for origin, rows in results.items():
        for sc in plan:
            for target, r in rows.get(sc.name, {}).items():
                unit = "rps" if sc.unit == "rps" else "mbps"
                cells = [origin, sc.name, target, fmt(r[unit], unit), f"{r['p50_ms']:.2f}",
                         f"{r['p99_ms']:.2f}", f"{r['peak_rss_kib'] / 1024:.1f}",
                         str(r["errors"])]
                lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def temp_table(results):
    lines = ["| origin | scenario | server | files (peak during run) | bytes (peak) "
             "| files left after |", "|---|---|---|---:|---:|---:|"]
    for origin, rows in results.items():
        for name, by_target in rows.items():
            for target, r in by_target.items():
                if "temp_files" in r:
                    tf = r["temp_files"]
                    lines.append(f"| {origin} | {name} | {target} | {tf['peak_files']} "
                                 f"| {tf['peak_bytes']} | {tf['files_after']} |")
    return "\n".join(lines)


def verdicts(fast):
    """The issue's targets, read against the fast-origin run."""
    out = []

    def check(label, ok, detail):
        state = "n/a " if ok is None else ("MET " if ok else "MISS")
        out.append(f"- [{state}] {label}: {detail}")

    def value(scenario, target, unit):
        return metric(fast.get(scenario, {}).get(target), unit)

    def at_least(scenario, unit, other, factor, other_name):
        g, o = value(scenario, "gateway", unit), value(scenario, other, unit)
        ok = None if g is None or o is None else g >= factor * o
        check(f"{scenario}: gateway >= {factor}x {other_name}", ok,
              f"{fmt(g, unit) or '-'} vs {fmt(o, unit) or '-'} ({ratio(g, o) or '-'})")

    at_least("small_200", "rps", "nginx", 1.5, "nginx proxy")
    at_least("small_304", "rps", "nginx", 1.5, "nginx proxy's 304")
    at_least("range_64k", "rps", "nginx", 1.0, "nginx proxy")
    at_least("video_256m", "mbps", "nginx", 2.0, "nginx proxy")
    at_least("video_256m", "mbps", "origin", 0.5, "origin")
    for scenario, cap in [("slow_200", 64), ("slow_500", 256)]:
        rss = value(scenario, "gateway", "rss")
        check(f"{scenario}: gateway peak RSS <= {cap} MiB",
              None if rss is None else rss <= cap, fmt(rss, "rss") or "-")
    temps = [(s, t, fast[s][t]["temp_files"]) for s in ("slow_200", "slow_500") if s in fast
             for t in ("gateway", "gateway_nolimits") if "temp_files" in fast[s].get(t, {})]
    check("no temp files: nothing under the gateways' TMPDIR during/after the slow readers",
          (all(tf["peak_files"] == 0 and tf["files_after"] == 0 for _, _, tf in temps)
           if temps else None),
          "; ".join(f"{s} {t}: {tf['peak_files']} files, {tf['peak_bytes']} bytes"
                    for s, t, tf in temps) or "-")
    for scenario in ("small_200", "small_304", "range_64k"):
        g, n = fast.get(scenario, {}).get("gateway"), fast.get(scenario, {}).get(
            "gateway_nolimits")
        if not g or not n:
            check(f"limits cost, {scenario}", None, "needs gateway and gateway_nolimits")
            continue
        parts = [("throughput", g["rps"] / n["rps"], g["rps"] >= 0.9 * n["rps"], ">= 0.9x"),
                 ("p50", g["p50_ms"] / n["p50_ms"], g["p50_ms"] <= 1.1 * n["p50_ms"], "<= 1.1x"),
                 ("p99", g["p99_ms"] / n["p99_ms"], g["p99_ms"] <= 1.1 * n["p99_ms"], "<= 1.1x")]
        check(f"limits cost, {scenario}: Redis limits vs in-process",
              all(ok for _, _, ok, _ in parts),
              "; ".join(f"{what} {r:.2f}x ({'ok' if ok else 'MISS'}, {want})"
                        for what, r, ok, want in parts)
              + f" [{g['rps']:.0f} vs {n['rps']:.0f} req/s, p50 {g['p50_ms']:.2f} vs "
              f"{n['p50_ms']:.2f} ms, p99 {g['p99_ms']:.2f} vs {n['p99_ms']:.2f} ms]")
    return "\n".join(out)


def machine():
    model = "unknown CPU"
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kib = int(open("/proc/meminfo").readline().split()[1])
    versions = []
    for cmd in (["nginx", "-v"], ["weed", "version"], ["wrk", "-v"], ["redis-server", "-v"],
                PG_ADMIN + ["SHOW server_version"]):
        res = subprocess.run(cmd, capture_output=True, text=True)
        first = (res.stdout + res.stderr).strip().splitlines()
        versions.append(first[0] if first else cmd[0])
    versions[-1] = f"PostgreSQL {versions[-1]}"
    return (f"{os.cpu_count()} x {model}, {mem_kib / 1024 / 1024:.0f} GiB RAM, Linux "
            f"{os.uname().release}; " + "; ".join(versions))


def report(args, plan, results, info, load_avg):
    server, load = cpu_list(args.server_cpus), cpu_list(args.load_cpus)
    n = len(args.server_cpus)
    lines = [
        f"## Load test ({time.strftime('%Y-%m-%d %H:%M')}; {args.duration} s per wrk run, "
        f"{args.connections} connections; slow readers (200, 500) for {args.slow_seconds} s "
        f"each; stream_1g is one curl download{'; --quick' if args.quick else ''})", "",
        f"Machine: {machine()}; load average before/after: {load_avg} / "
        f"{open('/proc/loadavg').read().split()[0]}", "",
        f"Pinning: every server (the origins, the nginx proxies and their workers, Redis, the "
        f"gateways) on CPU {server} with taskset, checked per thread; the load tools (wrk, curl, "
        f"the slow-reader client, this script) on CPU {load}. nginx `worker_processes {n}`, "
        f"gateway `[server] threads = {n}`. PostgreSQL is the machine's own server and is "
        "not pinned (the gateways read it only when their 30 s catalog cache misses).", "",
        "Gateway: HS256 JWT, catalog, authz, SigV4 signing, limits in the run's own "
        "redis-server (`gateway_nolimits`: the same config without `redis_url`, in-process "
        "limits); small-body memory cache "
        + ("off (--no-memory-cache)." if args.no_memory_cache else
           "on (default: bodies up to 64 KiB, 32 MiB in all)."),
    ]
    for origin, rows in results.items():
        lines += ["", f"### Origin `{origin}`: {ORIGIN_WHAT[origin]}", "",
                  summary_table(rows, plan)]
    lines += ["", "req/s for small_200, small_304, range_64k; MB/s (MiB/s) for video_256m and "
              "stream_1g; peak RSS (VmHWM over the process tree) for slow_200/slow_500. "
              "limits off = gateway_nolimits; limits cost = gateway / gateway_nolimits; floor = "
              "Pingora alone (benches/load/floor.rs: a 304 answered at once, the rest proxied).", "",
              "### Every run", "", detail_table(results, plan), "",
              "Throughput is MB/s for video_256m, stream_1g and the slow readers (aggregate); "
              "stream_1g and slow-reader latencies are time to the response head.", ""]
    if any("temp_files" in r for rows in results.values() for by in rows.values()
           for r in by.values()):
        lines += ["### Temp files during the slow readers", "", temp_table(results), "",
                  "Gateways: their own TMPDIR; nginx: its proxy temp dir (files in it, and "
                  "unlinked ones still open).", ""]
    for origin, i in info.items():
        if "redis_round_trips" in i:
            lines.append(f"Redis round trips per request ({origin}, information): "
                         f"{i['redis_round_trips']}; {i['redis_fallbacks']} 'redis call failed' "
                         "warnings in the gateway's log (each = 1 s of local limits).")
    lines += ["", "### Verdicts (fast origin)", "",
              verdicts(results["fast"]) if "fast" in results else "- [n/a ] fast origin not run",
              ""]
    return "\n".join(lines)


# ---------------------------------------------------------------- main


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int,
                    help=f"seconds per wrk run (default {DEFAULT_DURATION}; 3 with --quick)")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--slow-seconds", type=int,
                    help=f"seconds per slow-reader run (default {DEFAULT_SLOW_SECONDS}; "
                    "5 with --quick)")
    ap.add_argument("--only", help=f"comma-separated scenarios, of {','.join(SCENARIOS)}")
    ap.add_argument("--origins", default=",".join(ORIGINS), help="comma-separated, in order")
    ap.add_argument("--targets", default=",".join(TARGETS), help="comma-separated filter")
    ap.add_argument("--server-cpu", default="0", help="CPU list (taskset -c) of every server")
    ap.add_argument("--load-cpu", default="1", help="CPU list of the load tools")
    ap.add_argument("--quick", action="store_true",
                    help="3 s wrk runs, 5 s slow readers, no stream_1g: for fast iteration")
    ap.add_argument("--no-memory-cache", action="store_true",
                    help="storage.memory_cache_bytes = 0: every small read goes to the origin")
    ap.add_argument("--perf", action="store_true",
                    help="record the gateway (limits on) with `perf record -g` during its runs")
    ap.add_argument("--baseline", type=Path,
                    help="another build of the gateway (say the binary of main, copied aside) "
                    "to measure beside this one, configured the same, in the same run")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (configs, logs)")
    ap.add_argument("--out", default=str(ROOT / "target" / "load"), help="results directory")
    args = ap.parse_args()
    args.duration = args.duration or (3 if args.quick else DEFAULT_DURATION)
    args.slow_seconds = args.slow_seconds or (5 if args.quick else DEFAULT_SLOW_SECONDS)
    for option, given, known in [("--origins", args.origins, ORIGINS),
                                 ("--targets", args.targets, TARGETS),
                                 ("--only", args.only or "", SCENARIOS)]:
        unknown = [x for x in given.split(",") if x and x not in known]
        if unknown:
            ap.error(f"{option}: unknown {', '.join(unknown)} (known: {', '.join(known)})")
    args.server_cpus, args.load_cpus = parse_cpus(args.server_cpu), parse_cpus(args.load_cpu)
    if args.server_cpus & args.load_cpus:
        ap.error("--server-cpu and --load-cpu overlap")
    if not (args.server_cpus | args.load_cpus) <= os.sched_getaffinity(0):
        ap.error(f"this process may only use CPUs {cpu_list(os.sched_getaffinity(0))}")
    return args


def check_tools():
    for tool in ["weed", "nginx", "wrk", "curl", "psql", "redis-server", "redis-cli", "taskset"]:
        if not shutil.which(tool):
            raise SystemExit(f"`{tool}` is missing: run benches/load/run.sh, which installs it")
    for binary in [GATEWAY, SEEDER, FLOOR]:
        if not binary.exists():
            raise SystemExit(f"{binary} is missing: cargo build --release --bin "
                             "attachment-gateway --example load_seed --example load_floor")


def main():
    args = parse_args()
    check_tools()
    # This script and everything it runs itself (wrk, curl, the slow readers, redis-cli) stay
    # on the load CPUs; the servers are started under taskset on the server CPUs.
    os.sched_setaffinity(0, args.load_cpus)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="gw-load-"))
    os.chmod(tmp, 0o711)  # mkdtemp's 0700 would keep nginx's workers (nobody) out
    procs = Procs(args.server_cpus)
    taken = set()
    db = f"gw_bench_{secrets.token_hex(6)}"
    workers = len(args.server_cpus)
    origins = args.origins.split(",")
    wanted_targets = args.targets.split(",")
    try:
        access_key = f"AKBENCH{secrets.token_hex(4).upper()}"
        secret_key = secrets.token_hex(20)
        seaweed = start_seaweed(procs, tmp, taken, access_key, secret_key)
        redis_port = start_redis(procs, tmp, taken)
        subprocess.run(PG_ADMIN + [f"CREATE DATABASE {db}"], check=True)
        shared = Shared(f"postgres://postgres@127.0.0.1:5432/{db}", access_key, secret_key,
                        secrets.token_hex(24), workers, not args.no_memory_cache)
        objects, token = seed(tmp, taken, seaweed.port, redis_port, shared)
        plan = scenarios(args, objects, len(args.load_cpus))

        results, info = {}, {}
        load_avg = open("/proc/loadavg").read().split()[0]
        for origin in origins:
            if origin == "fast":
                root = tmp / "static"
                copy_objects(seaweed, objects, root)
                origin_target = start_static_origin(procs, tmp / "fast" / "origin", taken,
                                                    workers, root)
            else:
                origin_target = seaweed
            targets = start_targets(procs, origin, origin_target, tmp, taken, workers,
                                    redis_port, shared, token, wanted_targets,
                                    args.baseline)
            procs.check_pinning()
            results[origin], info[origin] = run_origin(origin, targets, plan, objects,
                                                       redis_port, args, out_dir)
            # One origin's servers at a time (SeaweedFS, the seeding origin, stays up).
            for name in [n for n in procs.procs if n.startswith(f"{origin}-")]:
                procs.stop(name)

        text = report(args, plan, results, info, load_avg)
        print(text)
        (out_dir / "report.md").write_text(text)
        (out_dir / "results.json").write_text(json.dumps({"results": results, "info": info},
                                                         indent=2))
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
