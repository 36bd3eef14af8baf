"""Bearer-token authentication for the API; the role check happens on every write."""

from __future__ import annotations

import functools
from typing import Callable, TypeVar

from flask import g, request

from registry.errors import Unauthorized
from registry.services import Actor, Role

from app.services import tokens

__all__ = ["require_roles", "current_actor", "optional_actor"]

F = TypeVar("F", bound=Callable)


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def optional_actor() -> Actor | None:
    token = _bearer()
    if token is None:
        return None
    return tokens().authenticate(token)


def current_actor() -> Actor:
    actor = g.get("actor")
    if actor is None:
        raise Unauthorized("this endpoint needs Authorization: Bearer <token>", code="TOKEN_MISSING")
    return actor


def require_roles(*roles: Role) -> Callable[[F], F]:
    """Authenticate the bearer token and check its role before the view runs."""

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            token = _bearer()
            if token is None:
                raise Unauthorized("this endpoint needs Authorization: Bearer <token>", code="TOKEN_MISSING")
            actor = tokens().authenticate(token)
            actor.require(*roles)
            g.actor = actor
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorator
