"""Prometheus metrics at ``/metrics``, for the operators' monitoring and alerts: requests and their
latency by route, verifications by channel and verdict, the scan writer's backlog, failures and
spooled files.

Off unless ``METRICS_TOKEN`` is set; the scrape then sends it (``Authorization: Bearer ...``,
Prometheus' ``authorization`` setting), since the figures say how the service is used. Under
gunicorn every worker counts into files of one folder (``PROMETHEUS_MULTIPROC_DIR``, made afresh by
``gunicorn.conf.py`` at each start, a worker's gauges removed when it ends), so a scrape that
reaches any worker answers for the whole server. The figures are per server: Prometheus adds the
servers up.
"""

from __future__ import annotations

import hmac
import os
import time
from typing import Any

from flask import Flask, Response, abort, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import REGISTRY, multiprocess

__all__ = ["init_metrics", "ScanMetrics"]

#: Seconds; around the targets (GET /verify's p99 under 30 ms, a photo's median under 150 ms).
BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REQUESTS = Counter("origin_http_requests", "HTTP requests answered, by route, method and status",
                   ("route", "method", "status"))
LATENCY = Histogram("origin_http_request_duration_seconds", "Time to answer, by route", ("route",), buckets=BUCKETS)
VERIFICATIONS = Counter("origin_verifications", "Verifications recorded in the scan history, by channel and verdict",
                        ("channel", "verdict"))
SCAN_PENDING = Gauge("origin_scan_events_pending", "Scan events held by the server's processes, not yet written",
                     multiprocess_mode="livesum")
SCAN_FLUSH_FAILURES = Counter("origin_scan_flush_failures", "Scan writer flushes the database refused")
SCAN_SPOOLED = Gauge("origin_scan_spool_files", "Files of scan events kept on disk, waiting to be written",
                     multiprocess_mode="livemax")

_STARTED = "origin.metrics.started"


class ScanMetrics:
    """What the scan writer reports (``registry.scans.ScanWriter``'s ``observer``)."""

    def __init__(self) -> None:
        self._verifications: dict[tuple[str, str], Any] = {}  # a counter child per label pair, found once

    def recorded(self, channel: str, verdict: str) -> None:
        child = self._verifications.get((channel, verdict))
        if child is None:
            child = self._verifications[(channel, verdict)] = VERIFICATIONS.labels(channel, verdict)
        child.inc()

    def flushed(self, pending: int, spooled: int, *, failed: bool) -> None:
        SCAN_PENDING.set(pending)
        SCAN_SPOOLED.set(spooled)
        if failed:
            SCAN_FLUSH_FAILURES.inc()


def init_metrics(app: Flask) -> None:
    """With ``METRICS_TOKEN``: time and count every request, and serve ``/metrics``."""
    token = app.config["METRICS_TOKEN"]
    if not token:
        return
    latency: dict[str, Any] = {}  # a histogram child per route, found once

    @app.before_request
    def _start() -> None:
        request.environ[_STARTED] = time.perf_counter()

    @app.after_request
    def _count(response: Response) -> Response:
        started = request.environ.get(_STARTED)
        if started is None or request.path == "/metrics":
            return response
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"  # bounded: no raw paths
        child = latency.get(route)
        if child is None:
            child = latency[route] = LATENCY.labels(route)
        child.observe(time.perf_counter() - started)
        REQUESTS.labels(route, request.method, str(response.status_code)).inc()
        return response

    expected = f"Bearer {token}".encode()

    @app.route("/metrics")
    def metrics() -> Response:
        if not hmac.compare_digest(request.headers.get("Authorization", "").encode(), expected):
            abort(404)  # as if there were none: the route says nothing to those without the token
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        else:
            registry = REGISTRY
        return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST,
                        headers={"Cache-Control": "no-store"})
