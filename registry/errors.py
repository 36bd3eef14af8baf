"""Registry errors: each carries a stable machine code; the web layer maps the family to a status."""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["RegistryError", "NotFound", "Conflict", "Forbidden", "Invalid", "InvalidFields", "Unauthorized",
           "Unavailable", "collect", "raise_problems"]


class RegistryError(Exception):
    code = "REGISTRY_ERROR"

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.row: int | None = None  # in a list of rows (an import), which one, counted from 1
        if code is not None:
            self.code = code


class NotFound(RegistryError):
    code = "NOT_FOUND"


class Conflict(RegistryError):
    code = "CONFLICT"


class Forbidden(RegistryError):
    code = "FORBIDDEN"


class Unauthorized(RegistryError):
    code = "UNAUTHORIZED"


class Unavailable(RegistryError):
    """This server cannot do it as configured (its private keys cannot be opened): another server,
    or this one once its settings are fixed, can; nothing was written."""

    code = "UNAVAILABLE"


class Invalid(RegistryError):
    """Well-formed request whose content breaks a rule (check digit, character set, dates...)."""

    code = "INVALID"


class InvalidFields(Invalid):
    """Several fields of one submission break rules: every one of them, in ``problems``. As an
    ``Invalid`` it reads as the first (code, field, message), so callers that show one error still
    can; a form shows each beside its field."""

    def __init__(self, problems: list[Invalid]) -> None:
        first = problems[0]
        super().__init__(first.message, code=first.code, field=first.field)
        self.problems = list(problems)


# Forms mark every field at fault at once: a submission's rules are run with ``collect``, which keeps
# each ``Invalid`` in a list, and ``raise_problems`` raises the one found, or all as ``InvalidFields``.
def collect(problems: list[Invalid], rule: Callable[..., Any], *args: Any) -> Any:
    """``rule(*args)``; its ``Invalid`` goes to ``problems`` instead (and None is answered)."""
    try:
        return rule(*args)
    except Invalid as exc:
        problems.append(exc)
        return None


def raise_problems(problems: list[Invalid]) -> None:
    if problems:
        raise problems[0] if len(problems) == 1 else InvalidFields(problems)
