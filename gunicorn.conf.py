"""gunicorn settings (see README, "Production"): chosen by measurement with bench/http_load.py."""

import multiprocessing
import os

bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count()))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", 4))
timeout = 60
graceful_timeout = 20
keepalive = 5
max_requests = 20000
max_requests_jitter = 2000
accesslog = "-" if os.environ.get("ACCESS_LOG", "1") == "1" else None
limit_request_line = 8190
