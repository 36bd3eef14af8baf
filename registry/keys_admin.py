"""Producer key rotation: certify a new custodial key; older keys stay valid for codes already printed.

Rotation is not revocation. The new key becomes the producer's active key (``Registry.active_key``
takes the newest), so new batches are signed by it; codes and records signed by an older key keep
verifying until the authority revokes that key (with the time it was compromised, if it was).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select

from keys.encoding import rfc3339
from registry.audit import audit
from registry.errors import Conflict, Forbidden
from registry.models import ProducerKey
from registry.services import Actor, Registry, Role

__all__ = ["rotate_key", "producer_keys"]

log = logging.getLogger(__name__)


def rotate_key(registry: Registry, actor: Actor, producer_id: str, *,
               gs1_prefixes: list[str] | None = None) -> ProducerKey:
    """Certify a fresh custodial key for ``producer_id`` (its producer or the authority).

    The new key covers ``gs1_prefixes`` (among the producer's), or by default the same GS1 prefixes
    as the newest active key (all the producer's when it has none). Certification is the
    authority's act: the producer asks, the service certifies under the authority key, and the
    audit trail names who asked.

    A producer rotates only from a key it holds, to prefixes its active keys already cover: a
    producer whose keys the authority revoked (or narrowed) asks the authority, which alone
    certifies past what the producer holds. Rotation had let a producer cut off by revocation
    certify itself a new key for all its prefixes."""
    actor.require(Role.PRODUCER, Role.AUTHORITY)
    actor.require_producer(producer_id)
    producer = registry.producer(producer_id)
    active = registry.session.execute(
        select(ProducerKey).where(ProducerKey.producer_id == producer.id, ProducerKey.status == "active",
                                  ProducerKey.not_after > registry.clock())
        .order_by(ProducerKey.created_at.desc(), ProducerKey.log_index.desc())
    ).scalars().all()
    current = active[0] if active else None
    if gs1_prefixes is not None:
        prefixes = gs1_prefixes  # certify_key refuses an empty list and a prefix not the producer's
    else:
        prefixes = current.gs1_prefixes if current is not None else producer.gs1_prefixes
    if actor.role != Role.AUTHORITY:
        if current is None:
            raise Conflict("the producer has no active certified key; ask the authority to certify one",
                           code="NO_ACTIVE_KEY")
        held = {p for key in active for p in key.gs1_prefixes}
        beyond = sorted((set(prefixes) & set(producer.gs1_prefixes)) - held)  # not the producer's: certify_key's
        if beyond:
            raise Forbidden(f"prefixes {', '.join(beyond)} are not covered by the producer's active keys "
                            f"({', '.join(sorted(held))}); ask the authority to certify them",
                            code="PREFIX_NOT_LICENSED", field="gs1_prefixes")
    on_behalf = Actor(role=Role.AUTHORITY, name=f"{actor.name or actor.role} (rotation)")
    key = registry.certify_key(on_behalf, producer.id, gs1_prefixes=list(prefixes))
    audit(registry.session, registry.clock(), actor, "key.rotate", key.kid, producer_id=producer.id,
          previous=current.kid if current else None)
    registry.session.flush()
    log.info("producer %s rotated to key %s", producer.id, key.kid)
    return key


def producer_keys(registry: Registry, actor: Actor, producer_id: str) -> list[dict[str, Any]]:
    """The producer's keys, newest first (its producer or the authority)."""
    actor.require(Role.PRODUCER, Role.AUTHORITY)
    actor.require_producer(producer_id)
    producer = registry.producer(producer_id)
    active = None
    try:
        active = registry.active_key(producer.id).kid
    except Conflict:  # NO_ACTIVE_KEY: the list still shows the others
        pass
    return [{"kid": k.kid, "public_key": k.public_key, "status": k.status, "custodial": k.custodial,
             "gs1_prefixes": k.gs1_prefixes, "not_before": rfc3339(k.not_before), "not_after": rfc3339(k.not_after),
             "compromised_at": rfc3339(k.compromised_at) if k.compromised_at else None,
             "in_use": k.kid == active, "log_index": k.log_index}
            for k in sorted(producer.keys, key=lambda k: (k.created_at, k.log_index), reverse=True)]
