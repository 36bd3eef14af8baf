"""Extensions, created unbound and bound in the factory."""

from __future__ import annotations

import functools
import logging
import time
from typing import Any, Callable

from flask import Flask, current_app, request
from flask_babel import Babel
from flask_smorest import Api
from flask_wtf import CSRFProtect
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter
from werkzeug.exceptions import TooManyRequests

from app.errors import ErrorSchema

__all__ = ["api", "babel", "csrf", "rate_limit", "over_limit", "config_limit", "init_rate_limits", "RateLimiter"]

log = logging.getLogger(__name__)


class _Api(Api):
    """flask-smorest's Api, documenting the errors as the API answers them (``{"error": {...}}``),
    not as flask-smorest's own handlers would (``{"code": 404, "status": ...}``)."""

    ERROR_SCHEMA = ErrorSchema


api = _Api()
babel = Babel()
csrf = CSRFProtect()


#: How long a Redis client waits to connect, or for an answer, before it counts as unreachable.
REDIS_TIMEOUT_SECONDS = 0.5
#: While Redis stays unreachable, one log line this often (a wrong password would otherwise log at
#: every retry, per worker).
OUTAGE_LOG_SECONDS = 60.0


def init_rate_limits(app: Flask) -> None:
    """Fixed-window counters per client address and endpoint, in this process's memory or, with
    ``REDIS_URL``, in Redis shared by every app server (``RATELIMIT_STORAGE_URI``)."""
    uri = app.config["RATELIMIT_STORAGE_URI"]
    options = ({"socket_connect_timeout": REDIS_TIMEOUT_SECONDS, "socket_timeout": REDIS_TIMEOUT_SECONDS}
               if uri.startswith(("redis://", "rediss://", "redis+unix://")) else {})
    app.extensions["rate_limiter"] = RateLimiter(storage_from_string(uri, **options))


class RateLimiter:
    """The fixed-window counters, in their storage (this process's memory, or Redis shared by every
    app server); while Redis cannot be reached, in this process's memory. An outage of the shared
    counters then neither fails the requests (every verification had answered 500) nor lifts the
    limits: each server counts on its own, and tries Redis again ``retry_seconds`` after it failed.
    Thread-safe as the storages are."""

    def __init__(self, storage: Storage, *, retry_seconds: float = 5.0) -> None:
        self.storage = storage
        self._shared = FixedWindowRateLimiter(storage)
        self._local = None if isinstance(storage, MemoryStorage) else FixedWindowRateLimiter(MemoryStorage())
        self._errors = storage.base_exceptions
        self._retry_seconds = retry_seconds
        self._down_until = 0.0  # monotonic time before which the shared counters are not tried
        self._failing_since: float | None = None  # the first failure of an outage (monotonic)
        self._said = 0.0  # when the outage was last logged

    @property
    def shared_down(self) -> bool:
        """Whether the shared counters failed within the last ``retry_seconds`` (counting in process)."""
        return time.monotonic() < self._down_until

    def hit(self, item: RateLimitItem, *identity: str) -> float | None:
        """Count one request; when it is over the limit, the time (epoch seconds) its window ends."""
        if self._local is not None and self.shared_down:
            return self._count(self._local, item, identity)
        try:
            refused = self._count(self._shared, item, identity)
        except self._errors as exc:
            if self._local is None:
                raise
            now = time.monotonic()
            if self._failing_since is None:  # logged when it starts, then once a minute while it lasts
                self._failing_since = self._said = now
                log.warning("rate-limit counters unreachable (%s): counting in this process, Redis tried again "
                            "every %.0f s", exc, self._retry_seconds)
            elif now - self._said >= OUTAGE_LOG_SECONDS:
                self._said = now
                log.warning("rate-limit counters still unreachable after %.0f s (%s): counting in this process",
                            now - self._failing_since, exc)
            self._down_until = now + self._retry_seconds
            return self._count(self._local, item, identity)
        if self._failing_since is not None:
            log.warning("rate-limit counters reachable again after %.0f s: shared by every app server",
                        time.monotonic() - self._failing_since)
            self._failing_since, self._down_until = None, 0.0
        return refused

    @staticmethod
    def _count(limiter: FixedWindowRateLimiter, item: RateLimitItem, identity: tuple[str, ...]) -> float | None:
        if limiter.hit(item, *identity):
            return None
        return limiter.get_window_stats(item, *identity).reset_time


@functools.lru_cache(maxsize=64)
def _items(text: str) -> tuple[RateLimitItem, ...]:
    return tuple(parse_many(text))


def config_limit(name: str) -> Callable[[], str]:
    """A limit read from the app's config at each request (``VERIFY_RATE_LIMIT``...)."""
    return lambda: current_app.config[name]


def rate_limit(limit_value: str | Callable[[], str], *, methods: list[str] | None = None,
               scope: str | None = None) -> Callable:
    """Limit a view per client address (``"120/minute"``, or a callable giving it from the config);
    over the limit the request gets a 429 with ``Retry-After``. Skipped outright when rate limits
    are off (``RATE_LIMITS=off``). Views of one ``scope`` share their counters (the API's and the
    pages' ways of doing the same thing), otherwise each endpoint has its own.

    Built on ``limits``, the library Flask-Limiter itself uses: Flask-Limiter's per-request work
    (resolving limits and exemptions twice, and a second storage read for the X-RateLimit headers
    of every answer) cost GET /api/v1/verify a quarter of its throughput with memory storage and
    half of it with Redis (bench, 2026-11-22); here a request that passes costs one counter hit."""
    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def checked(*args: Any, **kwargs: Any) -> Any:
            if methods is None or request.method in methods:
                refused = over_limit(limit_value, scope=scope)
                if refused is not None:
                    raise refused
            return view(*args, **kwargs)

        return checked

    return decorate


def over_limit(limit_value: str | Callable[[], str], *, scope: str | None = None) -> TooManyRequests | None:
    """Count this request against ``limit_value`` (as ``rate_limit`` does); the 429 to answer if it
    is over, with its ``retry_after``. For a view that answers it its own way (the report form:
    the form again with what was typed, not an error page)."""
    app = current_app
    if not app.config["RATELIMIT_ENABLED"]:
        return None
    limiter: RateLimiter = app.extensions["rate_limiter"]
    identity = (app.config["RATELIMIT_KEY_PREFIX"], scope or request.endpoint or "", request.remote_addr or "")
    text = limit_value() if callable(limit_value) else limit_value
    for item in _items(text):
        reset = limiter.hit(item, *identity)
        if reset is not None:
            return _too_many(item, reset)
    return None


def _too_many(item: RateLimitItem, reset: float) -> TooManyRequests:
    wait = max(1, int(reset - time.time() + 0.999))
    exc = TooManyRequests(f"more than {item} from this address: try again in {wait} s")
    exc.retry_after = wait  # the Retry-After header (app.errors)
    return exc
