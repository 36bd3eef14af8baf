"""The per-process lookup cache across log generations (registry.lookup.LookupCache)."""

from __future__ import annotations

import json

from registry.lookup import MAX_SELECTIVE_ENTRIES, LookupCache, changed_lookups
from registry.services import SYSTEM


def test_entries_the_new_log_entries_change_are_dropped_and_the_rest_carried():
    cache = LookupCache()
    old = cache.view(5)
    old.update({("batch", "g", "a"): "A", ("batch", "g", "b"): "B", ("key", "k1"): "K"})
    asked = []

    def changes(first: int, new: int) -> set[tuple]:
        asked.append((first, new))
        return {("batch", "g", "a")}

    new = cache.view(7, changes)
    assert asked == [(5, 7)]
    assert new == {("batch", "g", "b"): "B", ("key", "k1"): "K"}
    assert cache.view(7, changes) is new and asked == [(5, 7)]  # asked once per generation
    old[("batch", "g", "a")] = "stale"  # a request still holding the old generation's entries
    assert ("batch", "g", "a") not in cache.view(7)


def test_everything_is_dropped_when_the_change_cannot_be_read_or_the_generation_goes_back():
    cache = LookupCache()
    cache.view(5)[("key", "k1")] = "K"
    assert cache.view(6, lambda first, new: None) == {}  # an entry of a kind the cache does not know
    cache.view(6)[("key", "k1")] = "K"
    assert cache.view(3, lambda first, new: set()) == {}  # another database (a replica behind)
    cache.view(3)[("key", "k1")] = "K"
    called = []
    far = cache.view(4 + MAX_SELECTIVE_ENTRIES, lambda first, new: called.append(1) or set())
    assert far == {} and called == []  # past the limit: not worth reading every entry
    assert cache.view(5 + MAX_SELECTIVE_ENTRIES) == {}  # no reader given: dropped


def test_past_its_bound_the_cache_drops_the_oldest_loaded_tenth_and_keeps_the_rest():
    cache = LookupCache(max_entries=100)
    first = cache.view(5)
    first.update({("batch", "g", str(i)): i for i in range(101)})  # loaded in this order
    trimmed = cache.view(5)
    assert trimmed is not first  # a new dict: a request still holding the full one cannot grow it
    assert list(trimmed) == [("batch", "g", str(i)) for i in range(11, 101)]
    assert cache.view(5) is trimmed  # within the bound again: kept as it is
    assert first[("batch", "g", "0")] == 0  # the request holding the old dict still reads it

    trimmed.update({("key", str(i)): i for i in range(20)})  # 110 entries, then a new generation
    carried = cache.view(6, lambda first, new: {("batch", "g", "50")})
    assert len(carried) == 90 and ("batch", "g", "50") not in carried
    assert ("key", "19") in carried and ("batch", "g", "11") not in carried  # the oldest went



def test_a_bound_of_zero_keeps_nothing_between_requests():
    cache = LookupCache(max_entries=0)
    first = cache.view(5)
    first[("batch", "g", "a")] = "A"  # what one request loaded, for itself
    assert cache.view(5) == {} and cache.view(6, lambda old, new: set()) == {}


def test_each_kind_of_log_entry_names_the_lookups_it_changes():
    def entry(kind: str, **fields) -> tuple[str, str]:
        return kind, json.dumps({"t": kind, **fields})

    assert changed_lookups([entry("origin-record", gtin="08936000010010", lot="L1")]) == {
        ("batch", "08936000010010", "L1"), ("product", "08936000010010")}
    assert changed_lookups([entry("recall", gtin="08936000010010", lot="L1"),
                            entry("producer-key", kid="k1"), entry("key-revocation", kid="k2"),
                            entry("publication", title="x"), entry("publication-withdrawal", title="x"),
                            entry("producer", id="prd-1", name="A")]) == {
        ("batch", "08936000010010", "L1"), ("key", "k1"), ("key", "k2")}
    assert changed_lookups([entry("producer-key", kid="k1"), entry("something-new", id="x")]) is None
    assert changed_lookups([entry("recall", lot="L1")]) is None  # no GTIN: cannot say which batch
    assert changed_lookups([("origin-record", "not json")]) is None
    assert changed_lookups([]) == set()


def test_a_miss_reads_what_the_registry_holds(app, registry, world, session):
    """A cache miss reads a key, a batch and a product in one statement each on the verification's
    connection (registry.lookup: _KEY, _BATCH, _PRODUCT): the same values as the ORM's rows, the
    JSON decoded, dates and times typed, on SQLite (which stores them as text) as on PostgreSQL."""
    from datetime import datetime, timezone

    from keys.encoding import b64url_decode
    from registry.db import Reader
    from registry.lookup import RegistryLookup
    from registry.models import Batch, ProducerKey
    from tests.conftest import GTIN, batch_data

    registry.register_batch(SYSTEM, batch_data(lot="LOT-A"), producer_id=world.producer_id)
    registry.register_batch(SYSTEM, batch_data(lot="LOT-B", expiry=None, quantity=7), producer_id=world.producer_id)
    registry.recall(SYSTEM, GTIN, "LOT-A", reason="nhiễm khuẩn")
    when = datetime(2026, 11, 1, 8, 30, tzinfo=timezone.utc)
    registry.revoke_key(SYSTEM, world.kid, compromised_at=when)
    session.commit()

    lookup = RegistryLookup(Reader(app.extensions["read_connections"]))  # no cache: every lookup reads
    recalled, active = lookup.batch(GTIN, "LOT-A"), lookup.batch(GTIN, "LOT-B")
    for info in (recalled, active):
        row = session.query(Batch).filter_by(gtin=GTIN, lot=info.lot).one()
        assert (info.batch_id, info.producer_id, info.status, info.expiry_date, info.record) == (
            row.id, row.producer_id, row.status, row.expiry_date, row.record)
        assert info.producer == {"id": world.producer_id, "name": "HTX Highland", "country": "VN"}
        assert info.code_exp == row.expiry_date.strftime("%y%m%d")
    assert recalled.status == "recalled" and recalled.recall_reason == "nhiễm khuẩn"
    assert active.status == "active" and active.recall_reason is None and active.record["quantity"] == 7
    assert lookup.batch(GTIN, "NO-SUCH-LOT") is None

    key = lookup.key(world.kid)
    stored = session.get(ProducerKey, world.kid)
    assert (key.producer_id, key.gs1_prefixes, key.status) == (world.producer_id, ("893600001",), "revoked")
    assert key.compromised_at == when and key.compromised_at.tzinfo is not None
    assert key.raw == b64url_decode(stored.public_key)
    assert lookup.key("nokey123") is None

    assert lookup.product(GTIN) == batch_data()["product"]  # the latest batch's product
    assert lookup.product("08936000010027") is None
