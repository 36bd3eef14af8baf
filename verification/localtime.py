"""The date verdicts judge expiry on: expiry dates printed on goods are dates in Vietnam.

A server whose clock runs in UTC had answered the day before Vietnam's between 00:00 and 07:00
Vietnam time, while the inspector's phone (static/js/offline-verify.js) uses its own local date.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

__all__ = ["VIETNAM_TIME", "vietnam_date"]

VIETNAM_TIME = timezone(timedelta(hours=7))  # Vietnam keeps UTC+7 all year (no daylight saving)


def vietnam_date(moment: datetime | None = None) -> date:
    """The date in Vietnam at ``moment`` (a naive datetime is UTC), or now."""
    if moment is None:
        moment = datetime.now(timezone.utc)
    elif moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(VIETNAM_TIME).date()
