"""gunicorn settings, chosen by measurement with bench/http_load.py (README, "Performance").

On 2 cores, gthread with one thread per worker and one worker per core served GET /verify
fastest on PostgreSQL and within 10 % of the best on SQLite, while keeping keep-alive connections
off the workers; more threads only add GIL contention to a CPU-bound path. Put a buffering proxy
(nginx) in front so slow uploads from phones never hold a worker."""

import multiprocessing
import os

bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count()))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", 1))
timeout = 60
graceful_timeout = 20
keepalive = 5
max_requests = 20000
max_requests_jitter = 2000
accesslog = "-" if os.environ.get("ACCESS_LOG", "1") == "1" else None
limit_request_line = 8190
