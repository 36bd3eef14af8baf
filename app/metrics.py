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
from typing import Any, Callable

from flask import Flask, Response, abort, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import REGISTRY, multiprocess

__all__ = ["init_metrics", "ScanMetrics"]

#: Seconds; around the targets (GET /verify's p99 under 30 ms, a photo's median under 150 ms).
BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

#: One histogram per route, method and status: its ``_count`` is the number of requests.
LATENCY = Histogram("origin_http_request_duration_seconds", "Time to answer, by route, method and status",
                    ("route", "method", "status"), buckets=BUCKETS)
VERIFICATIONS = Counter("origin_verifications", "Verifications recorded in the scan history, by channel and verdict",
                        ("channel", "verdict"))
SCAN_PENDING = Gauge("origin_scan_events_pending", "Scan events held by the server's processes, not yet written",
                     multiprocess_mode="livesum")
SCAN_FLUSH_FAILURES = Counter("origin_scan_flush_failures", "Scan writer flushes the database refused")
SCAN_SPOOLED = Gauge("origin_scan_spool_files", "Files of scan events kept on disk, waiting to be written",
                     multiprocess_mode="livemax")


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


_ROUTE = "origin.route"  # the environ key under which the request's route rule is noted for _Timed
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class _Timed:
    """Around the app (WSGI): each request's time and status, by the route its URL matched, in one
    histogram observation. GET /verify on SQLite then costs 52 µs more CPU (+3.5 %, −2.5 % req/s);
    timed in Flask's before/after_request hooks with a separate request counter it had cost 143 µs
    (−10 % req/s; bench/results/2026-12-07-metrics.md)."""

    def __init__(self, wsgi_app: Callable) -> None:
        self.wsgi_app = wsgi_app
        self._children: dict[tuple[str, str, str], Any] = {}  # a histogram child per label set, found once

    def __call__(self, environ: dict, start_response: Callable) -> Any:
        started = time.perf_counter()
        status: list[str] = []

        def respond(code: str, headers: list, exc_info: Any = None) -> Any:
            status.append(code)
            return start_response(code, headers, exc_info)

        try:
            return self.wsgi_app(environ, respond)
        finally:
            if environ.get("PATH_INFO") != "/metrics":  # the scrapes themselves
                method = environ.get("REQUEST_METHOD", "")
                key = (environ.get(_ROUTE, "unmatched"),  # bounded: the route's rule, never the raw path
                       method if method in _METHODS else "other",  # and never a client's made-up method
                       status[0][:3] if status else "500")
                child = self._children.get(key)
                if child is None:
                    child = self._children[key] = LATENCY.labels(*key)
                child.observe(time.perf_counter() - started)


def init_metrics(app: Flask) -> None:
    """Time and count every request, and serve ``/metrics`` to ``METRICS_TOKEN``'s bearer (called
    only when it is set)."""
    token = app.config["METRICS_TOKEN"]
    app.wsgi_app = _Timed(app.wsgi_app)  # type: ignore[method-assign]

    @app.before_request  # the first hook: it runs even when a later one refuses the request
    def _note_route() -> None:
        rule = request.url_rule
        if rule is not None:
            request.environ[_ROUTE] = rule.rule

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
