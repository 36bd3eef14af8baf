"""GET /api/v1/verify under load: gunicorn + wrk on loopback, SQLite and PostgreSQL, beside a
minimal Flask endpoint served by the same gunicorn configuration and the raw Ed25519 verify rate.

    .venv/bin/python bench/http_load.py [--quick] [--json FILE] [--configs "gthread:2x4,sync:2x1"]
                                        [--duration 5] [--rounds 3] [--connections 16,64]
                                        [--codes N] [--no-postgres] [--profile [--profile-dir DIR]]
                                        [--postgres-cpu 1]

For each server configuration (worker class, workers x threads), gunicorn is started with
``-c gunicorn.conf.py`` on free loopback ports for every target at once (the service on SQLite,
on PostgreSQL, and bench/minimal_app.py). The service reaches PostgreSQL, which runs on this
machine, through its Unix socket, as an app server on the database's machine should (README,
"Configuration"); the same over TCP loopback is measured beside it (``postgresql-tcp``). With
``--postgres-cpu`` (a database machine of its own) it goes over TCP only. wrk (one thread, Lua
script bench/wrk/verify.lua) then drives them in turns, round after round, at each connection
count: the peak of a target is the median over rounds at its best connection count, and its ratio
to the minimal endpoint is the median of the ratios within each round (runs seconds apart, so a
slow spell of this shared machine hits both). Then rounds of open-loop runs at half each target's
peak give p50/p99.
The instance holds real signed unit codes (several batches of serials); every request asks for a
different code with a random client_id, in order, so a server rarely sees a code twice (as in the
field, and so that no per-process cache of signature checks flatters the figure). They are codes as
issued, which the service compares with the signature it made instead of checking them again with
Ed25519 (verification.verdicts); a code that differs from what was issued (a forgery) costs one
Ed25519 check more. Rate limits are off (wrk comes from one address); in production each request
also hits its rate-limit counter.

wrk and the server share this machine's cores: the load generator's own CPU is part of the cost.
``--postgres-cpu N`` gives PostgreSQL's processes core N alone and this benchmark (so gunicorn and
wrk) the others, as when the database runs on a machine of its own; the affinities are put back at
the end.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

if str(Path(__file__).resolve().parent) not in sys.path:  # not again in front of the repository's packages
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # (bench/registry.py is not registry/)

from common import REPO, ed25519_rates, temp_instance_config  # noqa: E402

from registry.db import APPLICATION_NAME, READ_APPLICATION_NAME  # noqa: E402

GUNICORN = REPO / ".venv" / "bin" / "gunicorn"
LUA = REPO / "bench" / "wrk" / "verify.lua"
PG_HOST = "127.0.0.1"
PG_USER = "postgres"
PG_DB = "bench_http"
PG_SOCKET_DIR = "/var/run/postgresql"  # where Debian's PostgreSQL puts its Unix socket
WARMUP_SECONDS = 2
# The highest rate any target is expected to verify: with it, the default number of codes covers
# every request one configuration sends (its servers are new, so no earlier configuration's
# requests count). The best peak measured here was 3,139 req/s (SQLite, 2026-11-23).
EXPECTED_PEAK_RPS = 4_000

__all__ = ["ServerConfig", "Server", "prepare_instance", "recreate_database", "drop_database", "pg_url",
           "free_port", "run_wrk", "shipped_config"]


# -- PostgreSQL helpers (also used by image_latency.py and national.py) --------------------------
def pg_url(dbname: str, *, socket: bool = False) -> str:
    """The database's SQLAlchemy URL: over TCP to ``PG_HOST``, or through the Unix socket."""
    if socket:
        return f"postgresql+psycopg://{PG_USER}@/{dbname}?host={PG_SOCKET_DIR}"
    return f"postgresql+psycopg://{PG_USER}@{PG_HOST}:5432/{dbname}"


def pg_socket_available() -> bool:
    return os.path.exists(os.path.join(PG_SOCKET_DIR, ".s.PGSQL.5432"))


def _admin():
    import psycopg

    return psycopg.connect(f"host={PG_HOST} user={PG_USER} dbname=postgres", autocommit=True)


def recreate_database(name: str) -> str:
    """Drop (if present) and create database ``name``; returns its SQLAlchemy URL."""
    with _admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return pg_url(name)


def copy_database(source: str, target: str) -> str:
    """``target`` as a copy of ``source`` (``CREATE DATABASE ... TEMPLATE``, file by file), dropped
    first if present; ``source``'s open connections are closed (a template must have none).
    Returns ``target``'s SQLAlchemy URL."""
    with _admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                     "AND pid <> pg_backend_pid()", (source,))
        conn.execute(f'CREATE DATABASE "{target}" TEMPLATE "{source}" STRATEGY FILE_COPY')
    return pg_url(target)


def drop_database(name: str) -> None:
    with _admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- the instance under test --------------------------------------------------------------------
def _batch_data(i: int, today: date) -> dict:
    names = ("Cà phê rang xay Buôn Ma Thuột", "Nước mắm Phú Quốc 40 độ đạm", "Mật ong hoa cà phê",
             "Trà Shan tuyết Hà Giang", "Hạt điều rang muối Bình Phước")
    from biip.checksums import gs1_standard_check_digit

    gtin_body = f"0893600001{i % 100:03d}"
    return {"gtin": gtin_body + str(gs1_standard_check_digit(gtin_body)), "lot": f"L{today:%y%m}-{i:04d}",
            "product": {"name": names[i % len(names)], "brand": "Highland Farm", "category": "Thực phẩm"},
            "facility": {"name": "Xưởng Ea Tu", "address": "Xã Ea Tu, Đắk Lắk", "country": "VN"},
            "production_date": (today - timedelta(days=30)).isoformat(),
            "expiry_date": (today + timedelta(days=335)).isoformat(), "quantity": 5000,
            "certifications": [{"scheme": "VietGAP", "id": f"VG-2026-{i:04d}"}]}


def prepare_instance(database_url: str | None = None, *, batches: int = 20, serials_per_batch: int = 5000,
                     ) -> tuple[dict[str, str], list[dict[str, str]]]:
    """A fresh instance like ``python -m app demo`` but larger: one producer with a certified custodial
    key, ``batches`` batches, ``serials_per_batch`` serials each. Returns (environment settings,
    [{"url", "gtin", "lot", "serial", "expiry", "product_name"}] for every unit code)."""
    from app import create_app
    from app.cli import init_instance
    from registry.services import SYSTEM, Registry

    cfg = temp_instance_config(database_url)
    app = create_app(cfg)
    init_instance(app)
    codes: list[dict[str, str]] = []
    with app.extensions["session_factory"]() as session:
        reg = Registry(session, keystore=app.extensions["keystore"], base_url=cfg["BASE_URL"])
        producer = reg.admit_producer(SYSTEM, name="HTX Nông sản Highland Farm", tax_code="0312345673",
                                      gs1_prefixes=["893600001"], country="VN")
        reg.certify_key(SYSTEM, producer.id)
        today = reg.clock().date()
        rows = [_batch_data(i, today) for i in range(batches)]
        registered = reg.register_batches(SYSTEM, rows, producer_id=producer.id)
        session.commit()
        for batch in registered:
            for serial, s in reg.issue_serials(SYSTEM, batch.gtin, batch.lot, serials_per_batch):
                codes.append({"url": reg.serial_url(batch, serial, s), "gtin": batch.gtin, "lot": batch.lot,
                              "serial": serial, "expiry": batch.expiry_date.isoformat() if batch.expiry_date else "",
                              "product_name": batch.product_name})
            session.commit()
    app.extensions["engine"].dispose()
    # Interleave the batches, so that consecutive requests hit different batches.
    codes.sort(key=lambda c: (c["serial"]))
    return cfg, codes


# -- gunicorn -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ServerConfig:
    worker_class: str  # sync | gthread
    workers: int
    threads: int

    @property
    def label(self) -> str:
        return f"{self.worker_class} {self.workers}x{self.threads}"

    @classmethod
    def parse(cls, text: str) -> "ServerConfig":
        kind, _, shape = text.strip().partition(":")
        workers, _, threads = shape.partition("x")
        return cls(kind, int(workers), int(threads or 1))


def shipped_config() -> ServerConfig:
    """What gunicorn.conf.py gives with no WEB_CONCURRENCY / GUNICORN_THREADS in the environment."""
    namespace: dict = {}
    env = {k: v for k, v in os.environ.items() if k not in ("WEB_CONCURRENCY", "GUNICORN_THREADS")}
    saved = os.environ.copy()
    try:
        os.environ.clear()
        os.environ.update(env)
        exec(compile((REPO / "gunicorn.conf.py").read_text(), "gunicorn.conf.py", "exec"), namespace)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    threads = int(namespace.get("threads", 1))
    kind = namespace.get("worker_class", "sync")
    if kind == "sync" and threads > 1:
        kind = "gthread"  # what gunicorn itself does
    return ServerConfig(kind, int(namespace.get("workers", 1)), threads)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """``gunicorn -c gunicorn.conf.py`` on a free loopback port, as a context manager."""

    def __init__(self, app_spec: str, config: ServerConfig, *, env: dict[str, str] | None = None,
                 pythonpath: str | None = None, ready_path: str = "/api/v1/openapi.json") -> None:
        self.app_spec, self.config, self.ready_path = app_spec, config, ready_path
        self.port = free_port()
        self.env = {**os.environ, **(env or {}), "BIND": f"127.0.0.1:{self.port}", "ACCESS_LOG": "0",
                    "WEB_CONCURRENCY": str(config.workers), "GUNICORN_THREADS": str(config.threads)}
        self.pythonpath = pythonpath
        self.log = tempfile.NamedTemporaryFile(prefix="bench-gunicorn-", suffix=".log", delete=False)
        self.proc: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "Server":
        cmd = [str(GUNICORN), "-c", "gunicorn.conf.py", "--worker-class", self.config.worker_class]
        if self.pythonpath:
            cmd += ["--pythonpath", self.pythonpath]
        cmd.append(self.app_spec)
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            with contextlib.suppress(OSError, http.client.HTTPException):
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", self.ready_path)
                if conn.getresponse().status < 500:
                    conn.close()
                    return self
            time.sleep(0.2)
        self.__exit__(None, None, None)
        raise RuntimeError(f"gunicorn ({self.config.label}, {self.app_spec}) did not start:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        with open(self.log.name, errors="replace") as fh:
            return "".join(fh.readlines()[-lines:])

    def worker_pids(self) -> list[int]:
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.proc.pid)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=25)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        with contextlib.suppress(OSError):
            os.unlink(self.log.name)


# -- wrk ----------------------------------------------------------------------------------------
def run_wrk(base: str, codes_file: str, *, connections: int, seconds: float, start: int = 0,
            rate: float = 0.0, threads: int = 1) -> dict:
    """One bounded wrk run; returns its figures (requests/s, latency in ms, errors, verdicts)."""
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{int(round(seconds))}s", "--timeout", "5s",
           "-s", str(LUA), base, "--", codes_file, str(start)]
    if rate:
        cmd.append(f"{rate / threads:.3f}")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    line = next((l for l in done.stdout.splitlines() if l.startswith("JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no figures (rc {done.returncode}):\n{done.stdout}\n{done.stderr}")
    raw = json.loads(line[5:])
    duration = raw["duration_us"] / 1e6
    errors = sum(raw["errors"][k] for k in ("connect", "read", "write", "timeout"))
    lat = raw["latency_us"]
    return {"connections": connections, "target_rps": rate or None, "seconds": round(duration, 2),
            "requests": raw["requests"], "rps": raw["requests"] / duration,
            "p50_ms": lat["p50"] / 1000, "p90_ms": lat["p90"] / 1000, "p99_ms": lat["p99"] / 1000,
            "p999_ms": lat["p999"] / 1000, "max_ms": lat["max"] / 1000, "mean_ms": lat["mean"] / 1000,
            "non2xx": raw["non2xx"], "socket_errors": errors, "verdicts": raw["verdicts"], "wrk_cpu_s": wrk_cpu}


# -- where the CPU goes -------------------------------------------------------------------------
_HZ = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(stat_path: str) -> float | None:
    """User + system CPU seconds from a /proc/.../stat file (None: the process is gone)."""
    try:
        with open(stat_path) as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / _HZ


def _threads_cpu(pid: int) -> dict[int, float]:
    out: dict[int, float] = {}
    with contextlib.suppress(FileNotFoundError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            seconds = _cpu_seconds(f"/proc/{pid}/task/{tid}/stat")
            if seconds is not None:
                out[int(tid)] = seconds
    return out


def _postgres_pids() -> list[int]:
    found = subprocess.run(["pgrep", "-x", "postgres"], capture_output=True, text=True).stdout.split()
    return [int(pid) for pid in found]


@contextlib.contextmanager
def postgres_on_own_cpu(cpu: int | None):
    """PostgreSQL's processes (the postmaster's new backends inherit it) on ``cpu`` alone, this
    process and its children (gunicorn, wrk) on the other cores; put back as they were after."""
    if cpu is None:
        yield
        return
    everything = os.sched_getaffinity(0)
    others = everything - {cpu}
    if cpu not in everything or not others:
        raise SystemExit(f"--postgres-cpu {cpu}: needs that core and at least one other (have {sorted(everything)})")
    pinned: list[int] = []
    try:
        for pid in _postgres_pids():
            try:
                os.sched_setaffinity(pid, {cpu})
            except ProcessLookupError:
                continue  # a backend that ended meanwhile
            except PermissionError:
                raise SystemExit(f"--postgres-cpu: may not move PostgreSQL's process {pid} (run as root "
                                 "or as the user PostgreSQL runs as)") from None
            pinned.append(pid)
        os.sched_setaffinity(0, others)
        yield
    finally:
        os.sched_setaffinity(0, everything)
        for pid in set(pinned) | set(_postgres_pids()):  # backends started meanwhile inherited the pin
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.sched_setaffinity(pid, everything)


def _machine() -> tuple[float, float]:
    """(all CPU seconds, idle CPU seconds) of the machine, every core."""
    with open("/proc/stat") as fh:
        values = [int(v) for v in fh.readline().split()[1:]]
    return sum(values) / _HZ, (values[3] + values[4]) / _HZ


class CpuMeter:
    """CPU time per request of one wrk run, by where it went, read from /proc (so native code,
    libsodium, SQLite and the kernel count too): the gunicorn workers' main threads (which serve
    the requests in sync workers) and their other threads (the scan writer; gthread's pool), wrk,
    PostgreSQL's processes, and the whole machine busy and idle. A worker that restarted during
    the run (max_requests) makes the figures partial: they are then left out."""

    def __init__(self, server: "Server") -> None:
        self.server = server

    def __enter__(self) -> "CpuMeter":
        self.pids = self.server.worker_pids()
        self.threads = {pid: _threads_cpu(pid) for pid in self.pids}
        self.pg = {pid: _cpu_seconds(f"/proc/{pid}/stat") for pid in _postgres_pids()}
        self.machine = _machine()
        return self

    def __exit__(self, *exc) -> None:
        self.machine_after = _machine()
        self.threads_after = {pid: _threads_cpu(pid) for pid in self.pids}
        self.pg_after = {pid: _cpu_seconds(f"/proc/{pid}/stat") for pid in self.pg}
        self.pg_names = _postgres_application_names() if self.pg else {}

    def per_request(self, result: dict) -> dict | None:
        n = result["requests"]
        if not n or set(self.server.worker_pids()) != set(self.pids):
            return None
        main = other = 0.0
        for pid in self.pids:
            before, after = self.threads[pid], self.threads_after[pid]
            for tid, seconds in after.items():
                spent = seconds - before.get(tid, 0.0)
                if tid == pid:
                    main += spent
                else:
                    other += spent
        by_kind = {"reads": 0.0, "writes": 0.0, "rest": 0.0}
        for pid, seconds in self.pg.items():
            after = self.pg_after.get(pid)
            if seconds is None or after is None:
                continue
            name = self.pg_names.get(pid, "")
            kind = "reads" if name == READ_APPLICATION_NAME else "writes" if name == APPLICATION_NAME else "rest"
            by_kind[kind] += after - seconds
        pg = sum(by_kind.values())
        total = self.machine_after[0] - self.machine[0]
        idle = self.machine_after[1] - self.machine[1]
        us = 1e6 / n
        return {"main_threads": main * us, "other_threads": other * us, "wrk": result["wrk_cpu_s"] * us,
                "postgresql": pg * us, "postgresql_reads": by_kind["reads"] * us,
                "postgresql_writes": by_kind["writes"] * us, "postgresql_rest": by_kind["rest"] * us,
                "machine_busy": (total - idle) * us, "machine_idle": idle * us}


def _postgres_application_names() -> dict[int, str]:
    """Each PostgreSQL backend's ``application_name``: the service names its connections
    (registry.db), so the database's CPU splits into the verification's reads, the main engine's
    transactions (under GET /verify, the scan writer's flushes) and the rest (background processes)."""
    with _admin() as conn:
        return {pid: name or "" for pid, name in conn.execute("SELECT pid, application_name FROM pg_stat_activity")}


class CodeCursor:
    """Where the next wrk run starts in the code list, so one server keeps meeting new codes."""

    def __init__(self, count: int) -> None:
        self.count, self.position, self.sent = count, 0, 0

    def advance(self, result: dict) -> None:
        """Move on past ``result``'s requests, noting in it how many of them asked for a code this
        server had been asked before (the list wrapped round): those may have met its caches."""
        result["repeated_codes"] = max(0, min(result["requests"], self.sent + result["requests"] - self.count))
        self.sent += result["requests"]
        self.position = (self.position + result["requests"]) % self.count


# -- the measurement ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    name: str  # sqlite | postgresql | postgresql-tcp | sqlite-metrics | minimal
    app_spec: str
    env: dict
    codes_file: str
    n_codes: int
    pythonpath: str | None
    ready_path: str


def codes_needed(*, seconds: float, rounds: int, connections: int, half_seconds: float, half_rounds: int,
                 per_batch: int, rate: float = EXPECTED_PEAK_RPS) -> int:
    """Unit codes for every request of one configuration's runs (``measure_config``: a warm-up, the
    peak rounds at each connection count, a warm-up and the rounds at half the peak) at ``rate``,
    in whole batches: each request then asks for a code its server has not seen."""
    peak = WARMUP_SECONDS + rounds * connections * seconds
    half = WARMUP_SECONDS + half_rounds * half_seconds
    return math.ceil((peak + half / 2) * rate / per_batch) * per_batch


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def measure_config(config: ServerConfig, targets: list[Target], *, connections: list[int], seconds: float,
                   rounds: int, half_seconds: float, half_rounds: int) -> tuple[dict, dict]:
    """Every target's server up at once, then rounds of wrk runs that take turns between targets
    (the order rotating each round), first closed-loop for the peak, then open-loop at half each
    target's peak. On a shared, noisy machine a slow spell then hits every target alike: each
    round gives a ratio of runs made seconds apart, and the medians over rounds are reported.
    Returns ({target: sweep entry}, {target: half-peak entry})."""
    sweep: dict[str, dict] = {}
    half: dict[str, dict] = {}
    with contextlib.ExitStack() as stack:
        servers: dict[str, Server] = {}
        cursors: dict[str, CodeCursor] = {}
        for t in targets:
            try:
                servers[t.name] = stack.enter_context(Server(t.app_spec, config, env=t.env, pythonpath=t.pythonpath,
                                                             ready_path=t.ready_path))
                cursors[t.name] = CodeCursor(t.n_codes)
            except RuntimeError as exc:
                print(f"    {t.name} failed: {exc}", file=sys.stderr)
                sweep[t.name] = {"error": str(exc)[:2000]}
        live = [t for t in targets if t.name in servers]
        files = {t.name: t.codes_file for t in live}

        def run(name: str, **kw) -> dict:
            with CpuMeter(servers[name]) as meter:
                result = run_wrk(servers[name].base, files[name], start=cursors[name].position, **kw)
            result["cpu_us"] = meter.per_request(result)
            cursors[name].advance(result)
            return result

        for t in live:  # warm-up: imports, caches, prepared statements
            run(t.name, connections=connections[0], seconds=WARMUP_SECONDS)
        runs: dict[str, list[dict]] = {t.name: [] for t in live}
        for c in connections:
            for r in range(rounds):
                for t in live[r % len(live):] + live[:r % len(live)]:
                    result = run(t.name, connections=c, seconds=seconds)
                    result["round"] = r
                    runs[t.name].append(result)
                    print(f"    {t.name:10s} c={c:3d} round {r + 1}: {result['rps']:8.0f} req/s  "
                          f"p99 {result['p99_ms']:7.1f} ms  non-2xx {result['non2xx']}  errors {result['socket_errors']}",
                          file=sys.stderr)
        for t in live:
            by_c = {c: [x for x in runs[t.name] if x["connections"] == c] for c in connections}
            medians = {c: _median([x["rps"] for x in rs]) for c, rs in by_c.items()}
            best_c = max(medians, key=medians.get)
            entry = {"peak_rps": medians[best_c], "at_connections": best_c, "runs": runs[t.name],
                     "peak_rps_by_round": [x["rps"] for x in by_c[best_c]]}
            entry["peak_runs_with_repeated_codes"] = sum(1 for x in by_c[best_c] if x.get("repeated_codes"))
            measured = [x["cpu_us"] for x in by_c[best_c] if x.get("cpu_us")]
            if measured:  # the median of each part over the peak runs
                entry["cpu_us_per_request"] = {k: _median([m[k] for m in measured]) for k in measured[0]}
            if t.name != "minimal" and "minimal" in runs:
                minimal_c = {x["round"]: x["rps"] for x in runs["minimal"] if x["connections"] == best_c}
                ratios = [x["rps"] / minimal_c[x["round"]] for x in by_c[best_c] if minimal_c.get(x["round"])]
                entry["ratio_by_round"] = ratios
                entry["ratio_median"] = _median(ratios) if ratios else None
            sweep[t.name] = entry
        half_runs: dict[str, list[dict]] = {t.name: [] for t in live}
        for t in live:  # settle at the half rate first: the peak runs leave queues and a scan backlog
            run(t.name, connections=8, seconds=WARMUP_SECONDS, rate=sweep[t.name]["peak_rps"] / 2)
        for r in range(half_rounds):
            for t in live[r % len(live):] + live[:r % len(live)]:
                rate = sweep[t.name]["peak_rps"] / 2
                result = run(t.name, connections=64, seconds=half_seconds, rate=rate)
                half_runs[t.name].append(result)
                print(f"    {t.name:10s} half peak ({rate:.0f} req/s asked) round {r + 1}: {result['rps']:.0f} req/s  "
                      f"p50 {result['p50_ms']:.1f} ms  p99 {result['p99_ms']:.1f} ms  non-2xx {result['non2xx']}",
                      file=sys.stderr)
        for t in live:
            rs = half_runs[t.name]
            half[t.name] = {"rps": _median([x["rps"] for x in rs]), "p50_ms": _median([x["p50_ms"] for x in rs]),
                            "p99_ms": _median([x["p99_ms"] for x in rs]), "p999_ms": _median([x["p999_ms"] for x in rs]),
                            "p99_ms_by_round": [x["p99_ms"] for x in rs],
                            "non2xx": sum(x["non2xx"] for x in rs), "socket_errors": sum(x["socket_errors"] for x in rs),
                            "runs": rs}
    return sweep, half


def profile_run(server: Server, codes_file: str, cursor: CodeCursor, *, seconds: float, connections: int,
                keep: Path | None = None) -> dict:
    """py-spy (if installed in the venv) on every worker while wrk saturates the server:
    the share of GIL-holding samples per function (self) and per stage of the request. With
    ``keep``, py-spy's raw stacks (one file per worker) are copied there for a closer look."""
    pyspy = REPO / ".venv" / "bin" / "py-spy"
    if not pyspy.exists():
        return {"skipped": "py-spy not installed (.venv/bin/pip install py-spy)"}
    out = tempfile.mkdtemp(prefix="bench-pyspy-")
    procs = []
    for pid in server.worker_pids():
        path = os.path.join(out, f"{pid}.txt")
        procs.append((subprocess.Popen([str(pyspy), "record", "--pid", str(pid), "--duration", str(int(seconds)),
                                        "--rate", "200", "--gil", "--format", "raw", "--output", path, "--nonblocking"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), path))
    time.sleep(0.5)
    result = run_wrk(server.base, codes_file, connections=connections, seconds=seconds, start=cursor.position)
    cursor.advance(result)
    for proc, _ in procs:
        proc.wait(timeout=seconds + 30)
    selfs: dict[str, int] = {}
    stages: dict[str, int] = {}
    total = 0
    # Each sample goes to the innermost stage it is in (first match in this order).
    stages_in_order = [
        ("scan writer flushes (background thread)", ("ScanWriter._run",)),
        ("signature checks (keys/signing.py, Ed25519)", ("keys/signing.py", "ed25519.py", "nacl/")),
        ("parsing the code (verification/parsing.py)", ("verification/parsing.py",)),
        ("the unit's read: counters, serial id, log size (ScanHistory.begin)", ("ScanHistory.begin",)),
        ("scan recording (ScanHistory.record, .settle)", ("ScanHistory.record", "ScanHistory.settle")),
        ("registry lookups (RegistryLookup)", ("RegistryLookup",)),
        ("verdict logic (rest of verification/)", ("verification/",)),
        ("rest of the view (session, presenters, jsonify)", ("verify_text (app/api/verify_routes.py",)),
        ("webargs/marshmallow argument parsing", ("webargs/", "marshmallow/")),
        ("rate limits (limits)", ("limits/",)),
        ("Flask, Werkzeug, teardown, after_request", ("wsgi_app (flask/app.py",)),
        ("gunicorn: HTTP parsing, socket writes, thread pool", ("gunicorn/",)),
    ]
    db_markers = ("sqlalchemy/", "sqlite3", "psycopg/", "psycopg_binary", "psycopg_pool", "registry/db.py")
    db_total = 0
    for _, path in procs:
        if not os.path.exists(path):
            continue
        with open(path) as fh:
            for line in fh:
                stack, _, count = line.rstrip("\n").rpartition(" ")
                if not stack or not count.isdigit():
                    continue
                n = int(count)
                frames = stack.split(";")
                total += n
                leaf = frames[-1]
                selfs[leaf] = selfs.get(leaf, 0) + n
                stage = next((name for name, marks in stages_in_order
                              if any(m in f for f in frames for m in marks)), "other")
                stages[stage] = stages.get(stage, 0) + n
                if any(m in f for f in frames for m in db_markers):
                    db_total += n
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        for _, path in procs:
            if os.path.exists(path):
                shutil.copy(path, keep / os.path.basename(path))
    shutil.rmtree(out, ignore_errors=True)
    if not total:
        return {"skipped": "py-spy recorded nothing (ptrace not permitted?)"}
    return {"samples": total, "rps_while_profiled": result["rps"],
            "sqlalchemy_and_driver_pct": round(100 * db_total / total, 1),
            "stages_pct": {k: round(100 * v / total, 1) for k, v in sorted(stages.items(), key=lambda kv: -kv[1])},
            "top_self_pct": {k: round(100 * v / total, 1) for k, v in sorted(selfs.items(), key=lambda kv: -kv[1])[:15]}}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the shipped configuration only, short runs")
    parser.add_argument("--configs", help='comma-separated, e.g. "sync:2x1,gthread:2x4" (default: a sweep)')
    parser.add_argument("--duration", type=float, help="seconds per wrk run (default 5)")
    parser.add_argument("--half-duration", type=float, help="seconds of each half-peak run (default 8, quick 6)")
    parser.add_argument("--rounds", type=int, help="rounds of runs taking turns between targets (default 3, quick 2)")
    parser.add_argument("--connections", help="connection counts for the peak search (default 16,64; quick 32)")
    parser.add_argument("--codes", type=int, help="unit codes in the instance (default: as many as one "
                        f"configuration's runs would ask for at {EXPECTED_PEAK_RPS:,} req/s)")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--metrics", action="store_true", help="also the first database with METRICS_TOKEN set, "
                                                               "in turns with the others (the metrics' cost)")
    parser.add_argument("--profile", action="store_true", help="py-spy the verify path under load (SQLite, PostgreSQL)")
    parser.add_argument("--profile-dir", metavar="DIR",
                        help="with --profile, keep py-spy's raw stacks here (DIR/<target>/<worker pid>.txt)")
    parser.add_argument("--postgres-cpu", type=int, metavar="N",
                        help="PostgreSQL on core N alone, gunicorn and wrk on the others (a database machine of its own)")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)
    if args.postgres_cpu is not None and args.no_postgres:
        parser.error("--postgres-cpu needs PostgreSQL")
    with postgres_on_own_cpu(args.postgres_cpu):
        return _main(args)


def _main(args: argparse.Namespace) -> dict:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install -y wrk)")

    shipped = shipped_config()
    if args.configs:
        configs = [ServerConfig.parse(c) for c in args.configs.split(",")]
    elif args.quick:
        configs = [shipped]
    else:
        configs = [ServerConfig("sync", 2, 1), ServerConfig("gthread", 2, 1), ServerConfig("gthread", 2, 4),
                   ServerConfig("gthread", 4, 1)]
    if shipped not in configs:
        configs.insert(0, shipped)
    seconds = args.duration or 5
    half_seconds = args.half_duration or (6 if args.quick else 8)
    rounds = args.rounds or (2 if args.quick else 4)
    half_rounds = args.rounds or (2 if args.quick else 3)
    connections = [int(c) for c in (args.connections or ("32" if args.quick else "16,64")).split(",")]
    per_batch = 5000
    n_codes = args.codes or codes_needed(seconds=seconds, rounds=rounds, connections=len(connections),
                                         half_seconds=half_seconds, half_rounds=half_rounds, per_batch=per_batch)
    n_batches = max(1, n_codes // per_batch)

    figures: dict = {"cpus": os.cpu_count(), "python": sys.version.split()[0], "shipped_config": shipped.label,
                     "configs": [c.label for c in configs], "seconds_per_run": seconds,
                     "half_peak_seconds": half_seconds, "rounds": rounds, "half_rounds": half_rounds,
                     "connections": connections,
                     "codes": n_batches * per_batch, "wrk_threads": 1, "postgres_cpu": args.postgres_cpu}
    figures["ed25519"] = ed25519_rates()
    print(f"raw Ed25519 verify: {figures['ed25519']['verify_per_s']:,.0f}/s (OpenSSL), "
          f"{figures['ed25519']['verify_libsodium_per_s']:,.0f}/s (libsodium) on one core", file=sys.stderr)

    tmp = tempfile.mkdtemp(prefix="bench-http-")
    targets: list[Target] = []
    # (target, PostgreSQL database, through the Unix socket)
    databases: list[tuple[str, str | None, bool]] = [("sqlite", None, False)]
    if not args.no_postgres:
        if pg_socket_available() and args.postgres_cpu is None:
            databases += [("postgresql", PG_DB, True), ("postgresql-tcp", PG_DB + "_tcp", False)]
        else:
            databases.append(("postgresql", PG_DB, False))
    figures["postgres_link"] = {name: "unix socket" if by_socket else "tcp" for name, pg_db, by_socket in databases
                                if pg_db}
    for db_name, pg_db, by_socket in databases:
        started = time.perf_counter()
        url = None
        if pg_db:
            recreate_database(pg_db)
            url = pg_url(pg_db, socket=by_socket)
        env, codes = prepare_instance(url, batches=n_batches, serials_per_batch=per_batch)
        codes_file = os.path.join(tmp, f"codes-{db_name}.txt")
        with open(codes_file, "w") as fh:
            for code in codes:
                fh.write(urllib.parse.quote(code["url"], safe="") + "\n")
        print(f"{db_name}: {len(codes):,} unit codes in {n_batches} batches, ready in "
              f"{time.perf_counter() - started:.0f} s", file=sys.stderr)
        targets.append(Target(db_name, "wsgi:app", env, codes_file, len(codes), None, "/api/v1/openapi.json"))
    if args.metrics:  # the first database again, counting into Prometheus metrics (app.metrics): their cost
        first = targets[0]
        targets.insert(1, Target(f"{first.name}-metrics", first.app_spec, {**first.env, "METRICS_TOKEN": "m" * 40},
                                 first.codes_file, first.n_codes, first.pythonpath, first.ready_path))
    targets.append(Target("minimal", "minimal_app:app", {}, targets[0].codes_file, targets[0].n_codes,
                          str(REPO / "bench"), "/api/v1/verify?code=x"))

    sweep: dict[str, dict] = {t.name: {} for t in targets}
    half: dict[str, dict] = {t.name: {} for t in targets}
    for config in configs:
        print(f"  {config.label}: {', '.join(t.name for t in targets)} in turns", file=sys.stderr)
        config_sweep, config_half = measure_config(config, targets, connections=connections, seconds=seconds,
                                                   rounds=rounds, half_seconds=half_seconds, half_rounds=half_rounds)
        for name, entry in config_sweep.items():
            sweep[name][config.label] = entry
        for name, entry in config_half.items():
            half[name][config.label] = entry
    figures["sweep"] = sweep
    figures["half_peak"] = half

    def peak_of(target: str, label: str) -> float:
        return sweep.get(target, {}).get(label, {}).get("peak_rps", 0.0)

    # best configuration: the highest verify throughput summed over the databases (ties: the minimal endpoint)
    service_targets = [t for t in sweep if t != "minimal"]
    best = max(configs, key=lambda c: (sum(peak_of(t, c.label) / max(peak_of(t, shipped.label), 1)
                                           for t in service_targets), peak_of("minimal", c.label)))
    figures["best_config"] = best.label
    latency_configs = [shipped] + ([best] if best != shipped else [])

    if args.profile:
        profiles: dict[str, dict] = {}
        for t in targets:
            if t.name == "minimal":
                continue
            print(f"  {t.name}: profiling {shipped.label}", file=sys.stderr)
            with Server(t.app_spec, shipped, env=t.env, pythonpath=t.pythonpath, ready_path=t.ready_path) as server:
                cursor = CodeCursor(t.n_codes)
                cursor.position = t.n_codes // 2
                keep = Path(args.profile_dir) / t.name if args.profile_dir else None
                profiles[t.name] = profile_run(server, t.codes_file, cursor, seconds=10, connections=max(connections),
                                               keep=keep)
        figures["profile"] = profiles

    figures["summary"] = summarize(figures, latency_configs)
    shutil.rmtree(tmp, ignore_errors=True)
    for _, pg_db, _ in databases:
        if pg_db:
            drop_database(pg_db)

    print(markdown(figures))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1, ensure_ascii=False) + "\n")
    return figures


def summarize(figures: dict, latency_configs: list[ServerConfig]) -> list[dict]:
    rows = []
    sweep, half = figures["sweep"], figures["half_peak"]
    for config in latency_configs:
        label = config.label
        minimal = sweep.get("minimal", {}).get(label, {}).get("peak_rps")
        for target in [t for t in sweep if t != "minimal"] + ["minimal"]:
            p = sweep.get(target, {}).get(label, {}).get("peak_rps")
            h = half.get(target, {}).get(label, {})
            if p is None:
                continue
            entry = sweep[target][label]
            ratio = entry.get("ratio_median", p / minimal if minimal else None)
            rows.append({"config": label, "target": target, "peak_rps": p,
                         "peak_vs_minimal": ratio, "ratio_by_round": entry.get("ratio_by_round"),
                         "p99_ms_by_round": h.get("p99_ms_by_round"), "half_rate_rps": h.get("rps"),
                         "p50_ms": h.get("p50_ms"), "p99_ms": h.get("p99_ms"), "p999_ms": h.get("p999_ms"),
                         "non2xx": sum(r["non2xx"] for r in sweep[target][label]["runs"]) + h.get("non2xx", 0),
                         "socket_errors": sum(r["socket_errors"] for r in sweep[target][label]["runs"])
                         + h.get("socket_errors", 0),
                         "throughput_target_met": None if target == "minimal" or ratio is None else ratio >= 0.5,
                         "p99_target_met": None if target == "minimal" or h.get("p99_ms") is None
                         else h["p99_ms"] < 30})
    return rows


def _fmt(value, spec: str = ",.0f", missing: str = "–") -> str:
    return missing if value is None else format(value, spec)


def _cores(figures: dict) -> str:
    cpu = figures.get("postgres_cpu")
    if cpu is None:
        return f"{figures['cpus']} CPUs shared by gunicorn, wrk (1 thread) and PostgreSQL"
    return (f"PostgreSQL alone on CPU {cpu}, gunicorn and wrk (1 thread) on the other "
            f"{figures['cpus'] - 1} (--postgres-cpu: the idle column counts CPU {cpu}'s idle time)")


def markdown(figures: dict) -> str:
    out = []
    ed = figures["ed25519"]
    out.append(f"Each figure is the median over {figures.get('rounds', 1)} rounds in which the targets took turns "
               f"({figures['seconds_per_run']:.0f} s runs; half peak: {figures.get('half_rounds', 1)} × "
               f"{figures['half_peak_seconds']:.0f} s); the ratio to the minimal endpoint is the median of the "
               f"ratios within each round, listed in brackets.\n")
    links = figures.get("postgres_link") or {}
    link_text = ("" if not links else " PostgreSQL is reached " + " and ".join(
        f"{'through its Unix socket' if link == 'unix socket' else 'over TCP loopback'} (`{name}`)"
        for name, link in links.items()) + ".")
    out.append(f"Reference: raw Ed25519 verify on one core of this interpreter {ed['verify_per_s']:,.0f}/s "
               f"(pyca/cryptography, OpenSSL) and {ed.get('verify_libsodium_per_s', 0):,.0f}/s (PyNaCl, libsodium, "
               f"what the service uses); {_cores(figures)}. "
               f"{figures['codes']:,} distinct signed unit codes, one per request in turn, random client_id."
               f"{link_text}\n")
    out.append("| config | target | peak req/s | vs minimal | req/s at half peak | p50 ms | p99 ms | p99.9 ms | "
               "non-2xx | socket errors | targets (≥½ minimal, p99 < 30 ms) |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in figures["summary"]:
        met = ""
        if r["target"] != "minimal":
            met = ("✅" if r["throughput_target_met"] else "❌") + " " + ("✅" if r["p99_target_met"] else "❌")
        rounds = ", ".join(f"{x:.2f}" for x in r.get("ratio_by_round") or [])
        p99s = ", ".join(f"{x:.0f}" for x in r.get("p99_ms_by_round") or [])
        out.append(f"| {r['config']} | {r['target']} | {_fmt(r['peak_rps'])} | {_fmt(r['peak_vs_minimal'], '.2f')}"
                   f"{f' [{rounds}]' if rounds else ''} | "
                   f"{_fmt(r['half_rate_rps'])} | {_fmt(r['p50_ms'], '.1f')} | {_fmt(r['p99_ms'], '.1f')}"
                   f"{f' [{p99s}]' if p99s else ''} | "
                   f"{_fmt(r['p999_ms'], '.1f')} | {r['non2xx']} | {r['socket_errors']} | {met} |")
    out.append("")
    out.append(f"Configuration sweep: peak req/s (median over rounds at the best of "
               f"{', '.join(map(str, figures['connections']))} connections, {figures['seconds_per_run']:.0f} s runs); "
               f"shipped: {figures['shipped_config']}, "
               f"best: **{figures['best_config']}**\n")
    targets = list(figures["sweep"])
    out.append("| config | " + " | ".join(targets) + " | " + " | ".join(f"{t} p99 ms at peak" for t in targets) + " |")
    out.append("|---|" + "---|" * (2 * len(targets)))
    for label in figures["configs"]:
        cells, lat = [], []
        for t in targets:
            entry = figures["sweep"][t].get(label, {})
            if "peak_rps" in entry:
                best_run = max(entry["runs"], key=lambda r: r["rps"])
                cells.append(f"{entry['peak_rps']:,.0f} (c={entry['at_connections']})")
                lat.append(f"{best_run['p99_ms']:.0f}")
            else:
                cells.append("failed")
                lat.append("–")
        out.append(f"| {label} | " + " | ".join(cells) + " | " + " | ".join(lat) + " |")
    cpu_rows = [(label, t, figures["sweep"][t].get(label, {}).get("cpu_us_per_request"))
                for label in figures["configs"] for t in targets]
    if any(cpu for _, _, cpu in cpu_rows):
        sharing = ("all of it shares the machine's cores" if figures.get("postgres_cpu") is None
                   else f"PostgreSQL alone on CPU {figures['postgres_cpu']}")
        out.append(f"\nCPU per request at the peak, in µs (from /proc, median over the peak runs; {sharing}"
                   "): the gunicorn workers' main threads and their other threads "
                   "(sync workers serve requests on the main thread, the other one is the scan writer; gthread "
                   "workers serve them on pool threads), wrk, PostgreSQL's processes (and of those, the backends "
                   "of the verification's reads, of the scan writer's flushes, and the rest: background processes), "
                   "the machine busy and idle.\n")
        out.append("| config | target | workers' main threads | their other threads | wrk | PostgreSQL "
                   "| its reads / flushes / rest | machine busy | idle |")
        out.append("|---|---|---|---|---|---|---|---|---|")
        for label, t, cpu in cpu_rows:
            if cpu:
                split = (f"{cpu['postgresql_reads']:,.0f} / {cpu['postgresql_writes']:,.0f} / "
                         f"{cpu['postgresql_rest']:,.0f}" if "postgresql_reads" in cpu and cpu["postgresql"] >= 5
                         else "–")
                out.append(f"| {label} | {t} | {cpu['main_threads']:,.0f} | {cpu['other_threads']:,.0f} | "
                           f"{cpu['wrk']:,.0f} | {cpu['postgresql']:,.0f} | {split} | {cpu['machine_busy']:,.0f} | "
                           f"{cpu['machine_idle']:,.0f} |")
    repeated = [(label, t) for label in figures["configs"] for t in targets
                if t != "minimal" and figures["sweep"][t].get(label, {}).get("peak_runs_with_repeated_codes")]
    if repeated:
        out.append("\nCodes asked for again: in " + ", ".join(f"{t} ({label})" for label, t in repeated) +
                   " some peak runs came after the server had been sent every code once, so part of their "
                   "requests could meet codes it had already checked (a per-process cache of signature checks). "
                   "More codes (`--codes`) avoid it.")
    verdicts: dict[str, int] = {}
    for t in targets:
        if t == "minimal":
            continue
        for entry in figures["sweep"][t].values():
            for run in entry.get("runs", []):
                for k, v in run["verdicts"].items():
                    verdicts[k] = verdicts.get(k, 0) + v
    if verdicts:
        out.append("\nVerdicts answered during the service runs: " +
                   ", ".join(f"{k} {v:,}" for k, v in sorted(verdicts.items(), key=lambda kv: -kv[1])))
    for name, prof in figures.get("profile", {}).items():
        out.append(f"\nProfile of the verify path on {name} ({figures['best_config']}, saturated; py-spy --gil, so "
                   f"Python CPU time): share of samples, each in its innermost stage. SQLAlchemy + driver across "
                   f"stages: {prof.get('sqlalchemy_and_driver_pct', '?')} %.\n")
        if "skipped" in prof:
            out.append(f"skipped: {prof['skipped']}")
            continue
        out.append("| stage | % |")
        out.append("|---|---|")
        for k, v in prof["stages_pct"].items():
            out.append(f"| {k} | {v} |")
        out.append("\n| function (self) | % |")
        out.append("|---|---|")
        for k, v in list(prof["top_self_pct"].items())[:10]:
            out.append(f"| `{k}` | {v} |")
    return "\n".join(out)


if __name__ == "__main__":
    main()
