"""The audit trail: who did what to which thing, written with every write, read by the authority.

Every service writes its events through ``audit`` in the transaction of the change itself, so an
event exists exactly when its change was committed. The actions form one vocabulary (``ACTIONS``):
an action outside it is refused, so that the authority's filter and the pages' names for actions
never miss one. ``AuditTrail`` reads the trail newest first, a page at a time by position (an
event's id): events written while someone reads neither shift nor repeat a page.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from keys.encoding import rfc3339
from registry.actors import Actor, Role
from registry.errors import Invalid
from registry.models import ApiToken, AuditEvent

__all__ = ["ACTIONS", "AuditQuery", "AuditPage", "AuditTrail", "audit", "MAX_PAGE_SIZE", "MAX_FILTER_LENGTH"]

#: Every action the registry records, grouped by what it acts on (the authority's filter lists them
#: in this order).
ACTIONS: tuple[str, ...] = (
    "producer.admit", "producer.log",
    "key.certify", "key.rotate", "key.revoke",
    "batch.register", "batch.correct", "serials.issue", "batch.recall",
    "serial.flag_clear", "scans.purge", "reports.forget_contacts",
    "inspection.open", "inspection.check", "inspection.close", "inspection.evidence",
    "case.assign", "case.transition", "case.note", "case.publish",
    "publication.publish", "publication.withdraw",
    "user.create", "user.login", "user.login_failed", "user.login_refused", "user.logout",
    "user.password_change", "user.password_reset", "user.unlock", "user.deactivate", "user.reactivate",
    "token.create", "token.revoke",
    "keys.rewrap",
)
_KNOWN = frozenset(ACTIONS)

MAX_PAGE_SIZE = 200
MAX_FILTER_LENGTH = 200  # as long as the longest stored target (AuditEvent.target): a longer one matches nothing


def audit(session: Session, at: datetime, actor: Actor | str, action: str, target: str, **detail: Any) -> None:
    """Record that ``actor`` (an ``Actor``, or a name such as ``user:alice``) did ``action`` to
    ``target`` at ``at``, in the session's transaction; ``detail``: what else the event says."""
    if action not in _KNOWN:
        raise ValueError(f"unknown audit action {action!r}: add it to registry.audit.ACTIONS")
    name = actor if isinstance(actor, str) else (actor.name or actor.role)
    session.add(AuditEvent(at=at, actor=name, action=action, target=target, detail=detail))


@dataclass(frozen=True)
class AuditQuery:
    """What to look for; every field given must match (``actor``, ``action``, ``target``: exactly;
    ``since`` inclusive, ``until`` exclusive)."""

    actor: str | None = None
    action: str | None = None
    target: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> "AuditQuery":
        """From request parameters (empty values: no filter)."""
        return cls(**{name: values.get(name) or None for name in ("actor", "action", "target", "since", "until")})

    def problems(self) -> list[Invalid]:
        """Every field this query cannot be searched with, each as the error ``search`` raises."""
        found: list[Invalid] = []
        if self.action and self.action not in _KNOWN:
            found.append(Invalid(f"unknown action {self.action!r}", code="UNKNOWN_ACTION", field="action"))
        for name in ("actor", "target"):
            value = getattr(self, name)
            if value and len(value) > MAX_FILTER_LENGTH:
                found.append(Invalid(f"{name} is longer than {MAX_FILTER_LENGTH} characters", code="TOO_LONG",
                                     field=name))
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"{name}: a naive datetime")
        if self.since is not None and self.until is not None and self.until <= self.since:
            found.append(Invalid("until must be later than since", code="BAD_PERIOD", field="until"))
        return found

    def without(self, fields: set[str]) -> "AuditQuery":
        """This query without the filters named."""
        return replace(self, **{name: None for name in fields})


@dataclass(frozen=True)
class AuditPage:
    events: list[dict[str, Any]]
    next_before: int | None  # the ``before`` of the next (older) page; None: this is the last


class AuditTrail:
    """The authority's reading of the audit trail."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def search(self, actor: Actor, query: AuditQuery = AuditQuery(), *, limit: int = 50,
               before: int | None = None) -> AuditPage:
        """Events matching ``query``, newest first, at most ``limit``; ``before``: only events
        older than that one (the previous page's ``next_before``)."""
        actor.require(Role.AUTHORITY)
        _check(query, limit, before)
        statement = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit + 1)
        if before is not None:
            statement = statement.where(AuditEvent.id < before)
        if query.actor:
            statement = statement.where(AuditEvent.actor == query.actor)
        if query.action:
            statement = statement.where(AuditEvent.action == query.action)
        if query.target:
            statement = statement.where(AuditEvent.target == query.target)
        if query.since is not None:
            statement = statement.where(AuditEvent.at >= query.since)
        if query.until is not None:
            statement = statement.where(AuditEvent.at < query.until)
        rows = list(self.session.execute(statement).scalars())
        more = len(rows) > limit
        rows = rows[:limit]
        labels = self._token_labels({row.actor for row in rows})
        return AuditPage(events=[_event(row, labels.get(row.actor)) for row in rows],
                         next_before=rows[-1].id if more else None)

    def _token_labels(self, actors: set[str]) -> dict[str, str]:
        """The labels of the tokens among ``actors`` (``token:12`` -> the label it was created with):
        a token's number alone says nothing to whoever reads the trail. One query a page."""
        ids = {int(name[6:]) for name in actors
               if name.startswith("token:") and name[6:].isdigit() and name[6:].isascii() and len(name) < 26}
        if not ids:
            return {}
        rows = self.session.execute(select(ApiToken.id, ApiToken.label).where(ApiToken.id.in_(ids))).all()
        return {f"token:{token_id}": label for token_id, label in rows if label}


def _check(query: AuditQuery, limit: int, before: int | None) -> None:
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise Invalid(f"limit must be from 1 to {MAX_PAGE_SIZE}", code="BAD_LIMIT", field="limit")
    if before is not None and before < 1:
        raise Invalid("before must be an event id (1 or more)", code="BAD_CURSOR", field="before")
    problems = query.problems()
    if problems:
        raise problems[0]


def _event(row: AuditEvent, actor_label: str | None = None) -> dict[str, Any]:
    """``actor_label``: a token actor's label (None for people, the system, and unlabelled tokens)."""
    return {"id": row.id, "at": rfc3339(row.at), "actor": row.actor, "actor_label": actor_label,
            "action": row.action, "target": row.target, "detail": row.detail or {}}
