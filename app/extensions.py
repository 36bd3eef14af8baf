"""Extensions, created unbound and bound in the factory."""

from __future__ import annotations

import functools
import time
from typing import Any, Callable

from flask import Flask, current_app, request
from flask_babel import Babel
from flask_smorest import Api
from flask_wtf import CSRFProtect
from limits import RateLimitItem, parse_many
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter
from werkzeug.exceptions import TooManyRequests

__all__ = ["api", "babel", "csrf", "rate_limit", "over_limit", "config_limit", "init_rate_limits"]

api = Api()
babel = Babel()
csrf = CSRFProtect()


def init_rate_limits(app: Flask) -> None:
    """Fixed-window counters per client address and endpoint, in this process's memory or, with
    ``REDIS_URL``, in Redis shared by every app server (``RATELIMIT_STORAGE_URI``)."""
    storage = storage_from_string(app.config["RATELIMIT_STORAGE_URI"])
    app.extensions["rate_limiter"] = FixedWindowRateLimiter(storage)


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
    limiter: FixedWindowRateLimiter = app.extensions["rate_limiter"]
    identity = (app.config["RATELIMIT_KEY_PREFIX"], scope or request.endpoint or "", request.remote_addr or "")
    text = limit_value() if callable(limit_value) else limit_value
    for item in _items(text):
        if not limiter.hit(item, *identity):
            return _too_many(item, limiter.get_window_stats(item, *identity).reset_time)
    return None


def _too_many(item: RateLimitItem, reset: float) -> TooManyRequests:
    wait = max(1, int(reset - time.time() + 0.999))
    exc = TooManyRequests(f"more than {item} from this address: try again in {wait} s")
    exc.retry_after = wait  # the Retry-After header (app.errors)
    return exc
