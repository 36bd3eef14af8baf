"""The lookup cache over a worker's life: what a miss costs, how often a long tail misses, memory.

    python bench/lookup_cache.py [--batches 4000] [--postgres URL] [--no-rss] [--json out.json]

Each process caches the keys, batches and products it has looked up (registry.lookup.LookupCache,
bounded by LOOKUP_CACHE_ENTRIES) until gunicorn replaces it (gunicorn.conf.py: max_requests). This
measures what that choice rests on:

- **miss cost**: GET /verify of batch codes through the WSGI app in process (no server, no
  client), each code once with an empty cache (every batch a miss) against the same codes again
  (every batch a hit), on SQLite and on PostgreSQL; thread CPU and wall time per request;
- **memory per entry**: tracemalloc around the cold pass (SQLite);
- **miss fraction**: the real LookupCache fed 3 million batch lookups drawn with Zipf popularity
  (exponent 1, 100,000 batches), the cache emptied at every worker restart: the old settings
  (20,000 requests, 200,000 entries) against the shipped ones;
- **worker memory** (unless --no-rss): resident memory of the two workers of the shipped gunicorn
  configuration, max_requests off, over GET /verify runs (wrk) and 480 POST /verify/image of
  1600x1200 phone photos: what the restarts would guard against.
"""

from __future__ import annotations

import argparse
import bisect
import gc
import io
import json
import os
import random
import resource
import sys
import tempfile
import time
import tracemalloc
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, median, temp_instance_config  # noqa: E402
from http_load import (Server, _batch_data, prepare_instance, recreate_database,  # noqa: E402
                       run_wrk, shipped_config)
from image_latency import make_photos, post_photos  # noqa: E402

sys.path.insert(0, str(REPO))  # http_load put bench/ first: its registry.py would shadow the package

OLD = {"lifetime": 20_000, "entries": 200_000}  # the settings before 2026-11-23


def shipped() -> dict:
    import runpy

    conf = runpy.run_path(str(REPO / "gunicorn.conf.py"))
    from app.config import load_config

    return {"lifetime": conf["max_requests"], "entries": load_config(temp_instance_config())["LOOKUP_CACHE_ENTRIES"]}


# -- miss cost ----------------------------------------------------------------------------------
def _instance(database_url: str | None, batches: int) -> tuple[dict, list[str]]:
    from app import create_app
    from app.cli import init_instance
    from registry.services import SYSTEM, Registry

    cfg = temp_instance_config(database_url)
    app = create_app(cfg)
    init_instance(app)
    with app.extensions["session_factory"]() as session:
        reg = Registry(session, keystore=app.extensions["keystore"], base_url=cfg["BASE_URL"])
        producer = reg.admit_producer(SYSTEM, name="HTX", tax_code="0312345673", gs1_prefixes=["893600001"],
                                      country="VN")
        reg.certify_key(SYSTEM, producer.id)
        today = reg.clock().date()
        rows = [{**_batch_data(i, today), "lot": f"T{i:06d}"} for i in range(batches)]
        registered = reg.register_batches(SYSTEM, rows, producer_id=producer.id)
        session.commit()
        urls = [reg.batch_url(b) for b in registered]
    app.extensions["engine"].dispose()
    return cfg, urls


def _environ(url: str) -> dict:
    """The request as gunicorn hands it to the app: called directly, the WSGI app costs what it
    costs in a worker, where Flask's test client (bench/national.py) would add ~200 µs a request
    and its noise to both sides of a difference of tens."""
    return {"REQUEST_METHOD": "GET", "PATH_INFO": "/api/v1/verify",
            "QUERY_STRING": "code=" + urllib.parse.quote(url, safe=""), "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(),
            "wsgi.errors": sys.stderr, "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False,
            "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "127.0.0.1:8000", "HTTP_USER_AGENT": "bench"}


def _thread_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_THREAD)
    return usage.ru_utime + usage.ru_stime


def miss_cost(database_url: str | None, batches: int, rounds: int = 3) -> dict:
    from app import create_app
    from registry.lookup import LookupCache

    cfg, urls = _instance(database_url, batches)
    app = create_app(cfg)
    statuses: dict[str, int] = {}

    def start_response(status, headers, exc_info=None):
        statuses[status] = statuses.get(status, 0) + 1

    def serve() -> tuple[float, float]:
        environs = [_environ(u) for u in urls]
        cpu, wall = _thread_cpu(), time.perf_counter()
        for environ in environs:
            body = app(environ, start_response)
            b"".join(body)
            body.close()
        return (_thread_cpu() - cpu) * 1e6 / len(urls), (time.perf_counter() - wall) * 1e6 / len(urls)

    serve()  # the first pass warms everything but the cache (statements prepared, modules imported)
    entry_bytes = None
    if database_url is None:  # memory: a cold pass under tracemalloc, not timed
        app.extensions["lookup_cache"] = cache = LookupCache(len(urls) * 4)
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        serve()
        gc.collect()
        entry_bytes = (tracemalloc.get_traced_memory()[0] - before) / len(cache)
        tracemalloc.stop()
    figures: dict[str, list[float]] = {"cold_cpu": [], "cold_wall": [], "warm_cpu": [], "warm_wall": []}
    for _ in range(rounds):
        app.extensions["lookup_cache"] = LookupCache(len(urls) * 4)  # a new worker's, room for every code
        for kind in ("cold", "warm"):
            cpu, wall = serve()
            figures[f"{kind}_cpu"].append(cpu)
            figures[f"{kind}_wall"].append(wall)
    app.extensions["engine"].dispose()
    app.extensions["read_engine"].dispose()
    result = {name: round(median(values), 1) for name, values in figures.items()}
    result.update(requests=batches, rounds=rounds, statuses=statuses,
                  miss_cpu_us=round(result["cold_cpu"] - result["warm_cpu"], 1),
                  miss_wall_us=round(result["cold_wall"] - result["warm_wall"], 1))
    if entry_bytes is not None:
        result["bytes_per_entry"] = round(entry_bytes)
    return result


# -- miss fraction ------------------------------------------------------------------------------
def miss_fraction(*, lifetime: int, entries: int, batches: int = 100_000, draws: int = 3_000_000,
                  exponent: float = 1.0, seed: int = 1) -> float:
    """The share of lookups that miss a worker's LookupCache, restarted every ``lifetime`` requests,
    when one batch is looked up per request with Zipf popularity (the real cache, no database)."""
    from registry.lookup import LookupCache

    rng = random.Random(seed)
    cumulative, total = [], 0.0
    for rank in range(1, batches + 1):
        total += rank ** -exponent
        cumulative.append(total)
    misses = 0
    cache = view = None
    for n in range(draws):
        if n % lifetime == 0:
            cache = LookupCache(entries)  # a new worker
        view = cache.view(0)
        key = ("batch", bisect.bisect_left(cumulative, rng.random() * total))
        if key not in view:
            misses += 1
            view[key] = True
    return misses / draws


# -- worker memory ------------------------------------------------------------------------------
def worker_memory() -> list[dict]:
    env, codes = prepare_instance(None, batches=8, serials_per_batch=5000)
    photos = make_photos(codes, 40)
    codes_file = tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False)
    with codes_file:
        codes_file.writelines(urllib.parse.quote(c["url"], safe="") + "\n" for c in codes)

    def rss(pid: int) -> float:
        with open(f"/proc/{pid}/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS")) / 1024

    steps: list[dict] = []
    with Server("wsgi:app", shipped_config(),
                env={**env, "GUNICORN_CMD_ARGS": "--max-requests 0"}) as server:
        pids = server.worker_pids()
        gets = images = 0

        def note() -> None:
            if set(server.worker_pids()) != set(pids):
                raise RuntimeError("a worker was replaced during the run")
            steps.append({"gets": gets, "images": images, "rss_mb": [round(rss(pid)) for pid in pids]})

        note()
        for _ in range(4):
            gets += run_wrk(server.base, codes_file.name, connections=16, seconds=6, start=gets)["requests"]
            note()
        for _ in range(6):
            _, verdicts = post_photos(server.port, photos, 2)
            images += sum(verdicts.values())
            note()
        for _ in range(2):
            gets += run_wrk(server.base, codes_file.name, connections=16, seconds=6, start=gets)["requests"]
            note()
    os.unlink(codes_file.name)
    return steps


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=4000, help="batch codes for the miss cost (default 4000)")
    parser.add_argument("--postgres", help="a scratch PostgreSQL database URL (dropped and rebuilt)")
    parser.add_argument("--no-rss", action="store_true", help="skip the workers' memory run (about 2 minutes)")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)

    settings = shipped()
    figures: dict = {"shipped": settings, "old": OLD, "miss_cost": {}}
    for name, url in [("sqlite", None)] + ([("postgresql", args.postgres)] if args.postgres else []):
        if url:
            url = recreate_database(url.rsplit("/", 1)[1])
        figures["miss_cost"][name] = cost = miss_cost(url, args.batches)
        print(f"{name}: a miss costs {cost['miss_cpu_us']:.0f} µs CPU, {cost['miss_wall_us']:.0f} µs wall "
              f"(cold {cost['cold_wall']:.0f}, warm {cost['warm_wall']:.0f} µs a request)", file=sys.stderr)
    figures["miss_fraction"] = {
        label: {**s, "misses": round(miss_fraction(lifetime=s["lifetime"], entries=s["entries"]), 4)}
        for label, s in (("old", OLD), ("shipped", settings))}
    print(f"misses: {figures['miss_fraction']}", file=sys.stderr)
    if not args.no_rss:
        figures["worker_memory"] = worker_memory()
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
    print(markdown(figures))
    return figures


def markdown(f: dict) -> str:
    old, new = f["miss_fraction"]["old"], f["miss_fraction"]["shipped"]
    out = ["GET /api/v1/verify of batch codes in process, each code once with an empty lookup cache (a new "
           "worker's: every batch a miss) and again with it full; median of rounds, per request.\n",
           "| database | cold: CPU µs | cold: wall µs | warm: CPU µs | warm: wall µs | a miss: CPU µs | a miss: wall µs |",
           "|---|---|---|---|---|---|---|"]
    for name, c in f["miss_cost"].items():
        out.append(f"| {name} | {c['cold_cpu']:.0f} | {c['cold_wall']:.0f} | {c['warm_cpu']:.0f} | {c['warm_wall']:.0f} "
                   f"| {c['miss_cpu_us']:.0f} | {c['miss_wall_us']:.0f} |")
    for name, c in f["miss_cost"].items():
        others = {status: n for status, n in c["statuses"].items() if not status.startswith("200")}
        if others:
            out.append(f"\n**{name}: answers other than 200: {others}** (the figures include them).")
    entry = f["miss_cost"]["sqlite"].get("bytes_per_entry")
    if entry:
        out.append(f"\nMemory: {entry / 1024:.1f} KiB per cached entry (a batch with its origin record), so "
                   f"{new['entries']:,} entries hold about {entry * new['entries'] / 2**20:.0f} MB per worker.")
    out.append(f"\nMisses with a national long tail (100,000 batches, Zipf popularity, the real cache, 3 million "
               f"lookups): a worker replaced every {old['lifetime']:,} requests with up to {old['entries']:,} entries "
               f"(before) missed **{100 * old['misses']:.1f} %**; every {new['lifetime']:,} with its newest "
               f"{new['entries']:,} kept (shipped) **{100 * new['misses']:.1f} %**.")
    pg = f["miss_cost"].get("postgresql")
    if pg:
        saved = (old["misses"] - new["misses"]) * pg["miss_cpu_us"]
        out.append(f"On PostgreSQL that is {saved:.0f} µs of the worker's CPU saved per request on average.")
    if f.get("worker_memory"):
        out.append("\nResident memory of the two workers (shipped configuration, max_requests off):\n")
        out.append("| GET /verify so far | POST /verify/image so far | RSS MB |")
        out.append("|---|---|---|")
        for step in f["worker_memory"]:
            out.append(f"| {step['gets']:,} | {step['images']} | {' / '.join(str(m) for m in step['rss_mb'])} |")
    return "\n".join(out)


if __name__ == "__main__":
    main()
