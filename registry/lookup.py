"""The registry's side of verification: key, batch and serial lookups, and the scan history.

Verification is the hot path. Keys and batches change only through events that are appended to
the transparency log (certification, revocation, registration, recall), so the log size is a
generation number: lookups are cached per process, and when the log has grown the entries it
appended say which cached lookups they change (a registration its batch and product, a recall
its batch, a certification or revocation its key): only those are dropped, so that registrations
all day long do not empty every server's cache. One primary-key read of the log size per request
keeps every server exact, with no cross-server invalidation. When the request's ``ScanHistory``
reads the unit first (it does for every verification that records a scan), that read carries the
log size and the serial's id, and the lookup adopts them instead of asking again: one statement
per verification.
"""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from datetime import date, datetime
from typing import Any, Callable, Iterable

from sqlalchemy.orm import Session

from keys.encoding import b64url_decode
from keys.signing import public_key_from_raw
from registry.db import RawQuery, Reader, as_utc
from registry.rules import yymmdd
from verification.verdicts import BatchInfo, KeyInfo, SerialInfo

__all__ = ["RegistryLookup", "RegistryLookupAsOf", "LookupCache"]

_MISSING = object()


# The two reads every verification makes besides the scan counters: on the DBAPI connection.
_LOG_SIZE = RawQuery("SELECT size FROM log_state WHERE id = 1")
_SERIAL_ID = RawQuery("SELECT id, s FROM serials WHERE batch_id = :batch_id AND serial = :serial")
# What the log appended between two generations, read once per process when the log has grown.
_LOG_SINCE = RawQuery('SELECT kind, data FROM log_entries WHERE "index" >= :old AND "index" < :new')
# A cache miss: one statement each, on the DBAPI connection like the reads above. Through the ORM
# a batch's miss cost ~1 ms of CPU (0.95 on PostgreSQL, 0.63 on SQLite, in process): at national
# scale every server meets a long tail of batches it has not cached, again after each restart.
_KEY = RawQuery("SELECT kid, public_key, producer_id, gs1_prefixes, status, compromised_at "
                "FROM producer_keys WHERE kid = :kid")
_BATCH = RawQuery(
    "SELECT b.id, b.gtin, b.lot, b.producer_id, b.status, b.expiry_date, b.record, p.name, p.country, "
    "(SELECT r.reason FROM recalls r WHERE r.batch_id = b.id ORDER BY r.id DESC LIMIT 1), "
    "(SELECT r.at FROM recalls r WHERE r.batch_id = b.id ORDER BY r.id DESC LIMIT 1) "
    "FROM batches b JOIN producers p ON p.id = b.producer_id WHERE b.gtin = :gtin AND b.lot = :lot")
_FIRST_RECALL = RawQuery("SELECT MIN(at) FROM recalls WHERE batch_id = :batch_id")
_PRODUCT = RawQuery("SELECT record FROM batches WHERE gtin = :gtin ORDER BY id DESC LIMIT 1")


def _json(value: Any) -> Any:
    """A JSON column read through the DBAPI: psycopg decodes it, SQLite gives the stored text."""
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def _date(value: date | str | None) -> date | None:
    """A Date column read through the DBAPI: SQLite gives the stored ``YYYY-MM-DD``."""
    return date.fromisoformat(value) if isinstance(value, str) else value


#: Past this many new entries the whole cache is dropped instead (one read, not thousands of keys).
MAX_SELECTIVE_ENTRIES = 1000
#: A process's cache bound unless configured (``LOOKUP_CACHE_ENTRIES``): about 110 MB of batches.
DEFAULT_MAX_ENTRIES = 20_000


def changed_lookups(entries: Iterable[tuple[str, str]]) -> set[tuple] | None:
    """The cache keys that log entries ``(kind, signed object as JSON)`` change; None: any of them
    (an entry of a kind this does not know)."""
    keys: set[tuple] = set()
    for kind, data in entries:
        if kind in ("publication", "publication-withdrawal"):
            continue  # the public lists: no lookup reads them
        if kind == "producer":
            continue  # an admission: a new producer has no batch or key yet, and a producer's row never changes
        try:
            obj = json.loads(data)
            if kind == "origin-record":
                keys.update({("batch", obj["gtin"], obj["lot"]), ("product", obj["gtin"])})
            elif kind == "recall":
                keys.add(("batch", obj["gtin"], obj["lot"]))
            elif kind in ("producer-key", "key-revocation"):
                keys.add(("key", obj["kid"]))
            else:
                return None
        except (ValueError, TypeError, KeyError):
            return None  # not what the registry writes: trust nothing cached
    return keys


class LookupCache:
    """Per-process cache of keys, batches and products for one log generation.

    ``view(generation, changes)`` gives the entries valid at ``generation``. When the log has grown,
    ``changes(old, new)`` names the keys its new entries change (``changed_lookups``); the others
    are carried into the new generation's entries, a new dict, so that a request still holding the
    old one can never put what it loaded before the change into the new one. Without ``changes``,
    past ``MAX_SELECTIVE_ENTRIES`` new entries, or when the generation goes back (another database),
    everything is dropped.

    At most ``max_entries`` are kept: past that, the oldest loaded tenth goes (a new dict, as for a
    new generation), so a worker that has met a long tail of batches keeps the rest of what it
    knows. A batch with its origin record takes about 6 KiB here, so the default holds a worker's
    cache near 110 MB (``LOOKUP_CACHE_ENTRIES``, bench/lookup_cache.py); a worker restart still
    empties it, hence gunicorn.conf.py's large ``max_requests``."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self._lock = threading.Lock()
        self._generation = -1
        self._entries: dict[tuple, Any] = {}
        self._max = max_entries

    def __len__(self) -> int:
        return len(self._entries)

    def view(self, generation: int,
             changes: Callable[[int, int], set[tuple] | None] | None = None) -> dict[tuple, Any]:
        with self._lock:
            old, entries = self._generation, self._entries
            if generation == old and len(entries) <= self._max:
                return entries
        dropped = None
        selective = 0 <= old < generation <= old + MAX_SELECTIVE_ENTRIES
        if generation == old:
            dropped = set()
        elif changes is not None and selective:
            dropped = changes(old, generation)
        with self._lock:
            if self._generation == generation and self._entries is not entries:
                return self._entries  # another request moved it meanwhile
            if dropped is None or self._entries is not entries:
                fresh = {}
            else:
                # a copy first (one C call, atomic under the GIL): other threads' requests may
                # still be adding to the dict they hold, and iterating it would then fail
                kept = [(key, value) for key, value in entries.copy().items() if key not in dropped]
                if len(kept) > self._max:
                    kept = kept[len(kept) - self._max * 9 // 10:]  # dicts keep the order of loading
                fresh = dict(kept)
            self._generation, self._entries = generation, fresh
            return fresh


class RegistryLookup:
    """``verification.verdicts.Lookup`` over the registry database."""

    def __init__(self, source: Session | Reader, *, cache: LookupCache | None = None) -> None:
        self._source = source
        self._cache = cache
        self._view: dict[tuple, Any] | None = None
        self._serials: dict[tuple[str, str, str], SerialInfo | None] = {}  # read with the scan counters

    def adopt_generation(self, generation: int) -> None:
        """The registry's generation, read by this request in another statement; call before the
        first lookup (a later call takes effect for the lookups after it)."""
        if self._cache is not None:
            self._view = self._cache.view(generation, self._changes)

    def _changes(self, old: int, new: int) -> set[tuple] | None:
        return changed_lookups(_LOG_SINCE.all(self._source, {"old": old, "new": new}))

    def adopt_serial(self, gtin: str, lot: str, serial: str, serial_id: int | None, issued: str | None) -> None:
        """This request read the serial's row (id None: no such serial) with the scan counters."""
        self._serials[(gtin, lot, serial)] = (
            SerialInfo(serial_id=serial_id, serial=serial, issued=issued) if serial_id is not None else None)

    @property
    def _entries(self) -> dict[tuple, Any] | None:
        if self._cache is not None and self._view is None:
            row = _LOG_SIZE.first(self._source, {})
            self.adopt_generation(row[0] if row else 0)
        return self._view

    def _cached(self, key: tuple, load: Callable[[], Any]) -> Any:
        entries = self._entries
        if entries is None:
            return load()
        value = entries.get(key, _MISSING)
        if value is _MISSING:
            value = load()
            entries[key] = value
        return value

    def key(self, kid: str) -> KeyInfo | None:
        return self._cached(("key", kid), lambda: self._load_key(kid))

    def _load_key(self, kid: str) -> KeyInfo | None:
        row = _KEY.first(self._source, {"kid": kid})
        if row is None:
            return None
        kid, public_key, producer_id, prefixes, status, compromised_at = row
        return KeyInfo(kid=kid, public_key=public_key_from_raw(b64url_decode(public_key)), producer_id=producer_id,
                       gs1_prefixes=tuple(_json(prefixes)), status=status, compromised_at=as_utc(compromised_at))

    def batch(self, gtin: str, lot: str) -> BatchInfo | None:
        return self._cached(("batch", gtin, lot), lambda: self._load_batch(gtin, lot))

    def _load_batch(self, gtin: str, lot: str) -> BatchInfo | None:
        row = _BATCH.first(self._source, {"gtin": gtin, "lot": lot})
        if row is None:
            return None
        batch_id, gtin, lot, producer_id, status, expiry, record, name, country, recall_reason, recalled_at = row
        expiry = _date(expiry)
        recalled = status == "recalled"
        return BatchInfo(batch_id=batch_id, gtin=gtin, lot=lot, producer_id=producer_id, status=status,
                         expiry_date=expiry, record=_json(record),
                         producer={"id": producer_id, "name": name, "country": country},
                         recall_reason=recall_reason if recalled else None, code_exp=yymmdd(expiry),
                         recalled_at=as_utc(recalled_at) if recalled and recalled_at is not None else None)

    def product(self, gtin: str) -> dict[str, Any] | None:
        return self._cached(("product", gtin), lambda: self._load_product(gtin))

    def recall_reason(self, gtin: str, lot: str) -> str | None:
        batch = self.batch(gtin, lot)
        return batch.recall_reason if batch is not None else None

    def _load_product(self, gtin: str) -> dict[str, Any] | None:
        row = _PRODUCT.first(self._source, {"gtin": gtin})
        return _json(row[0]).get("product") if row is not None and row[0] else None

    def serial(self, batch: BatchInfo, serial: str) -> SerialInfo | None:
        read = self._serials.get((batch.gtin, batch.lot, serial), _MISSING)
        if read is not _MISSING:
            return read
        # Issued serials are never deleted: a hit can be cached for the generation's lifetime.
        entries = self._entries
        found = entries.get(("serial", batch.batch_id, serial)) if entries is not None else None
        if found is None:
            row = _SERIAL_ID.first(self._source, {"batch_id": batch.batch_id, "serial": serial})
            found = SerialInfo(serial_id=row[0], serial=serial, issued=row[1]) if row is not None else None
            if found is not None and entries is not None:  # a miss is not cached: serials are issued
                entries[("serial", batch.batch_id, serial)] = found  # without a log entry
        return found


class RegistryLookupAsOf(RegistryLookup):
    """The registry as a check made at ``moment`` is judged on (a check made offline, synced later):
    a batch recalled only after that moment was not recalled then. Its verdict leaves the recall
    out; the note ``RECALLED_SINCE`` says when it came and why, so that the goods are not left on
    the shelf on the strength of an old check. A key compromised after that moment was sound then."""

    def __init__(self, source: Session | Reader, *, moment: datetime, cache: LookupCache | None = None) -> None:
        super().__init__(source, cache=cache)
        self._moment = moment

    def key(self, kid: str) -> KeyInfo | None:
        """A key compromised only after the moment signed nothing false before it: judged as active
        then. A revocation with no time of compromise, or one before the moment, stands."""
        key = super().key(kid)
        if key is not None and key.status == "revoked" and key.compromised_at is not None \
                and key.compromised_at > self._moment:
            return replace(key, status="active", compromised_at=None)
        return key

    def batch(self, gtin: str, lot: str) -> BatchInfo | None:
        batch = super().batch(gtin, lot)
        if batch is None or batch.status != "recalled":
            return batch
        row = _FIRST_RECALL.first(self._source, {"batch_id": batch.batch_id})
        first = as_utc(row[0]) if row is not None else None
        if first is not None and first > self._moment:
            return replace(batch, status="active", recalled_since=first)
        return batch
