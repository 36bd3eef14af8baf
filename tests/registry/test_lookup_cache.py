"""The per-process lookup cache across log generations (registry.lookup.LookupCache)."""

from __future__ import annotations

import json

from registry.lookup import MAX_SELECTIVE_ENTRIES, LookupCache, changed_lookups


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


def test_each_kind_of_log_entry_names_the_lookups_it_changes():
    def entry(kind: str, **fields) -> tuple[str, str]:
        return kind, json.dumps({"t": kind, **fields})

    assert changed_lookups([entry("origin-record", gtin="08936000010010", lot="L1")]) == {
        ("batch", "08936000010010", "L1"), ("product", "08936000010010")}
    assert changed_lookups([entry("recall", gtin="08936000010010", lot="L1"),
                            entry("producer-key", kid="k1"), entry("key-revocation", kid="k2"),
                            entry("publication", title="x"), entry("publication-withdrawal", title="x")]) == {
        ("batch", "08936000010010", "L1"), ("key", "k1"), ("key", "k2")}
    assert changed_lookups([entry("producer-key", kid="k1"), entry("something-new", id="x")]) is None
    assert changed_lookups([entry("recall", lot="L1")]) is None  # no GTIN: cannot say which batch
    assert changed_lookups([("origin-record", "not json")]) is None
    assert changed_lookups([]) == set()
