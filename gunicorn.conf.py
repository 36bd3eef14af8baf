"""gunicorn settings, chosen by measurement with bench/http_load.py (README, "Performance").

On 2 cores, sync workers, one per core, served GET /verify fastest on SQLite and within noise of
the best on PostgreSQL, in two sweeps (sync 2x1, gthread 2x1, 2x4, 4x1, 3x4, 4x4, 2x8): the path
is CPU-bound, so more threads only add GIL contention. Sync workers need a buffering proxy (nginx) in front, so that slow uploads
from phones and idle keep-alive connections never hold a worker; GUNICORN_THREADS > 1 switches
to gthread for deployments without one."""

import multiprocessing
import os

bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count()))
threads = int(os.environ.get("GUNICORN_THREADS", 1))
worker_class = "gthread" if threads > 1 else "sync"
timeout = 60
graceful_timeout = 20
keepalive = 5
max_requests = 20000
max_requests_jitter = 2000
accesslog = "-" if os.environ.get("ACCESS_LOG", "1") == "1" else None
limit_request_line = 8190
