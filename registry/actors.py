"""Who acts on the registry: a role, the producer it is bound to, and a name for the audit trail."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from registry.errors import Forbidden

__all__ = ["Role", "Actor", "SYSTEM"]


class Role(StrEnum):
    AUTHORITY = "authority"
    PRODUCER = "producer"
    INSPECTOR = "inspector"
    PARTNER = "partner"


@dataclass(frozen=True)
class Actor:
    """Who is acting: a token's or a person's role, and the producer it is bound to."""

    role: Role
    producer_id: str | None = None
    name: str = ""

    def require(self, *roles: Role) -> None:
        if self.role not in roles:
            raise Forbidden(f"this action needs the role {' or '.join(roles)}; you are {self.role}",
                            code="ROLE_FORBIDDEN")

    def require_producer(self, producer_id: str) -> None:
        """Authority may act for any producer; a producer only for itself."""
        if self.role == Role.AUTHORITY:
            return
        if self.role == Role.PRODUCER and self.producer_id == producer_id:
            return
        raise Forbidden("this belongs to another producer", code="NOT_YOUR_PRODUCER")


SYSTEM = Actor(role=Role.AUTHORITY, name="system")
