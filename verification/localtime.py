"""The date verdicts judge expiry on: expiry dates printed on goods are dates in Vietnam.

A server whose clock runs in UTC had answered the day before Vietnam's between 00:00 and 07:00
Vietnam time, while the inspector's phone (static/js/offline-verify.js) uses its own local date.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

__all__ = ["VIETNAM_TIME", "vietnam_date", "vietnam_day", "vietnam_moment"]

VIETNAM_TIME = timezone(timedelta(hours=7))  # Vietnam keeps UTC+7 all year (no daylight saving)


def vietnam_date(moment: datetime | None = None) -> date:
    """The date in Vietnam at ``moment`` (a naive datetime is UTC), or now."""
    if moment is None:
        moment = datetime.now(timezone.utc)
    elif moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(VIETNAM_TIME).date()


def vietnam_day(text: str, *, until: bool = False) -> datetime | None:
    """A day as a form gives it (``YYYY-MM-DD``, a calendar's value) as the moment it starts in
    Vietnam; for ``until``, the last day included: the moment the next one starts (an exclusive
    bound). None when empty; ``ValueError`` or ``OverflowError`` when it is no such day."""
    text = (text or "").strip()
    if not text:
        return None
    return datetime.combine(date.fromisoformat(text), time(), VIETNAM_TIME) + timedelta(days=int(until))


def vietnam_moment(text: str) -> datetime | None:
    """A date and time as a form gives it (``datetime-local``): with an offset, that moment; without,
    the time in Vietnam. None when empty; ``ValueError`` when it is no such time."""
    text = (text or "").strip()
    if not text:
        return None
    value = datetime.fromisoformat(text)
    return value.replace(tzinfo=VIETNAM_TIME) if value.tzinfo is None else value
