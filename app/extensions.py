"""Extensions, created unbound and bound in the factory."""

from __future__ import annotations

import functools
from typing import Any, Callable

from flask import current_app
from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_smorest import Api
from flask_wtf import CSRFProtect

__all__ = ["api", "babel", "limiter", "csrf", "rate_limit"]

api = Api()
babel = Babel()
csrf = CSRFProtect()
limiter = Limiter(key_func=get_remote_address, default_limits=[], headers_enabled=True)


def rate_limit(limit_value: str | Callable[[], str], **options: Any) -> Callable:
    """``limiter.limit``, skipped outright when rate limits are off (``RATE_LIMITS=off``).

    Flask-Limiter's decorator works out exemptions and meta limits on every request even when it
    is disabled: 5 % of GET /api/v1/verify's time in process (bench/http_load.py --profile)."""
    def decorate(view: Callable) -> Callable:
        limited = limiter.limit(limit_value, **options)(view)

        @functools.wraps(view)
        def checked(*args: Any, **kwargs: Any) -> Any:
            if current_app.config["RATELIMIT_ENABLED"]:
                return limited(*args, **kwargs)
            return view(*args, **kwargs)

        return checked

    return decorate
