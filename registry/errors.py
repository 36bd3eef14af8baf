"""Registry errors: each carries a stable machine code; the web layer maps the family to a status."""

from __future__ import annotations

__all__ = ["RegistryError", "NotFound", "Conflict", "Forbidden", "Invalid", "InvalidFields", "Unauthorized"]


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
