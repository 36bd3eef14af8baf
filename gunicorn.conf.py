"""gunicorn settings, chosen by measurement with bench/http_load.py (README, "Performance").

On 2 cores: sync workers, one per core. In the sweeps (sync 2x1, gthread 2x1, 2x4, 4x1; earlier
also 3x4, 4x4, 2x8) sync 2x1 and gthread 2x1 served GET /verify within about 10 % of each other,
each ahead in some runs (the machines are noisy); more workers or threads were not faster over
both databases (the path is CPU-bound). At half the peak rate sync had the lower p99 on
PostgreSQL in both sweeps of 2026-11-22 (16.0 and 14.3 ms against 28.1 and 225.7 ms) and on
SQLite in one (7.2 against 43.3 ms; the other 54.6 against 35.2 ms). In the afternoon's two
sweeps (after the verification became one statement) sync 2x1 led once (1,449 req/s on SQLite
against at most 971 for gthread) and gthread 4x1 once (1,346 against 1,021). In the evening's
sweep (17:15) sync 2x1 led on SQLite (2,064 against at most 1,830) and was within 5 % of the best
on PostgreSQL (1,541 against 1,619 for gthread 2x1); at 19:20 gthread 2x1 led on both (2,286 /
2,052 against 2,047 / 1,971, with a p99 at half its peak of 38 ms on SQLite), at 19:37 sync 2x1
led on PostgreSQL (1,811 against at most 1,623) and was within 3 % on SQLite; at 21:31 it led
on PostgreSQL (1,271 against at most 1,256) and was within 3 % on SQLite (1,483 against 1,519
for gthread 2x1, whose p99 at that peak was 99 ms against 17); on 2026-11-23 at 00:36 it led on
both (1,619 / 1,319 against at most 1,365 / 1,112). 3 and 4 sync workers cost more CPU per request
(869 and 977 µs against 788 on SQLite); 3 against 2, in turns, raised the ratio to the minimal
endpoint only by slowing the minimal endpoint down (2026-11-23, three pairs of runs: PostgreSQL
0.44-0.46x against 0.39-0.45x, the verification's own rate 1,145-1,270 against 1,150-1,203
req/s). Sync workers need a
buffering proxy (nginx) in front, so that slow uploads from phones and idle keep-alive
connections never hold a worker; GUNICORN_THREADS > 1 switches to gthread for deployments
without one.

The app is loaded once in the master and the workers are forked from it (preload_app): a worker
starts in milliseconds, warm, where loading the app took 2 s of CPU (the GS1 dictionary, the
routes), paid again at every restart (max_requests) while the other workers carried the load;
wsgi.py gives each worker its own database connections.

A worker is replaced after max_requests (500,000, jittered; it was 20,000), and
bench/lookup_cache.py shows why (2026-11-23). A restart empties the worker's lookup cache
(registry.lookup), and with a national long tail a worker keeps meeting batches it has not
cached: with 100,000 batches of Zipf popularity, 37.5 % of a worker's requests missed when it
lived 20,000 requests, 23.3 % now, with the cache bounded to its newest LOOKUP_CACHE_ENTRIES;
a miss costs GET /verify 14-76 µs of CPU on SQLite, 47-203 µs on PostgreSQL (four runs as
the machine's speed changed).
The restarts only guard against slow leaks, and none showed: with max_requests off, each worker's
resident memory went from 90 to 107 MB over 75,000 GET /verify (the bounded caches filling), to
137 MB at the first 1600x1200 photos of 480 POST /verify/image (the decoders' buffers), and to
139 MB after 41,000 more GET /verify (bench/results/2026-11-23.md)."""

import os
import shutil
import tempfile

from app.config import ConfigError, server_settings

try:
    _server = server_settings()
except ConfigError as _exc:  # the setting to fix, not gunicorn's traceback of this file
    raise SystemExit(f"Error: {_exc}") from None

bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = _server["workers"]
threads = _server["threads"]
worker_class = "gthread" if threads > 1 else "sync"
preload_app = True
timeout = 60
graceful_timeout = 20
keepalive = 5
max_requests = 500_000
max_requests_jitter = 50_000
accesslog = "-" if _server["access_log"] else None
# gunicorn's own format, and last the request's reference when it has one (app.request_ids: sent
# in X-Request-ID when the request logged something or answered 5xx), else "-".
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %({x-request-id}o)s'
limit_request_line = 8190
# gunicorn 25.1 and later open a control socket by default ($HOME/.gunicorn/gunicorn.ctl, one path
# shared by every instance on the host) through which workers can be added or the server stopped:
# an admin interface this service does not use. Older releases ignore the setting.
control_socket_disable = True

# Metrics (app.metrics, with METRICS_TOKEN): every worker counts into files of one folder, made
# afresh here before the app is loaded (prometheus_client reads it at import), so that a scrape
# reaching any worker answers for the whole server. A worker's live gauges go when it ends; the
# folder goes when the server stops.
if os.environ.get("METRICS_TOKEN"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="origin-metrics-")


def child_exit(server, worker):  # noqa: ANN001 - gunicorn's hook
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def on_exit(server):  # noqa: ANN001 - gunicorn's hook
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder and os.path.basename(folder).startswith("origin-metrics-"):
        shutil.rmtree(folder, ignore_errors=True)
