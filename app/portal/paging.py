"""The page number of a portal list, from a query string or a form."""

from __future__ import annotations

__all__ = ["MAX_PAGE", "page_number"]

#: Past any list the portal shows (500,000 rows at 50 a page). A larger number had reached the
#: database as an offset it refuses (PostgreSQL: bigint out of range; SQLite: integer overflow)
#: and answered 500.
MAX_PAGE = 10_000


def page_number(value: object) -> int:
    """``value`` as a page number from 1 to ``MAX_PAGE``; anything else (missing, not a whole
    number, out of range) is the first page."""
    try:
        page = int(str(value)) if value not in (None, "") else 1
    except ValueError:
        return 1
    return page if 1 <= page <= MAX_PAGE else 1
