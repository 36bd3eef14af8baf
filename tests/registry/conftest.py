"""What the registry's scan tests share: one issued serial, and a verification of it recorded."""

from __future__ import annotations

import pytest

from registry.lookup import RegistryLookup
from registry.services import Actor, Role
from tests.conftest import GTIN, batch_data
from verification.verdicts import ScanContext, Verdict


@pytest.fixture
def unit(registry, world, session):
    """A batch and one serial of it, as the verification's lookup answers them."""
    actor = Actor(role=Role.PRODUCER, producer_id=world.producer_id)
    registry.register_batch(actor, batch_data())
    (serial, _), = registry.issue_serials(actor, GTIN, "LOT-1", 1)
    session.commit()
    lookup = RegistryLookup(session)
    batch = lookup.batch(GTIN, "LOT-1")
    return batch, lookup.serial(batch, serial)


def record_scan(history, unit, client, **place):
    """One genuine verification of ``unit`` by ``client`` (and from ``place``: lat, lon, network)."""
    batch, serial = unit
    summary = history.record(batch=batch, serial=serial, context=ScanContext(client=client, **place))
    history.settle(Verdict.GENUINE)
    return summary
