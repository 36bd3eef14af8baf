"""The transparency log replayed into the state that verification serves, compared with the tables.

The log is the record that cannot be silently rewritten (``registry.log``); the tables are what
verification and the trust list read. Someone with write access to the database could change a
table without a log entry (a revoked key set back to active, a recall undone, a record edited), and
the log alone would still verify. ``compare_state`` replays every entry (admissions of producers,
certifications, key revocations, registrations and corrections, recalls, publications and their
withdrawals) and compares the result, row by row, with ``producers`` (the name and country
verification shows shoppers, and the GS1 prefixes keys are certified for), ``producer_keys``,
``batches``, ``recalls``, ``batch_versions`` and ``publications`` (the warnings and the names of
violators the public pages show: a name taken off, or a withdrawal undone, in the table alone is
found).

Both the log and the batches are streamed: what is kept in memory per batch is its current entry's
index and leaf hash (and its recalls' and replaced versions'), never a second copy of its record.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from keys.encoding import log_bytes, rfc3339
from registry.merkle import leaf_hash
from registry.models import Batch, BatchVersion, LogEntry, Producer, ProducerKey, Publication, Recall

__all__ = ["Difference", "StateCheck", "compare_state"]

#: What a publication's row holds of its signed record, column by column (registry.publications).
PUBLICATION_FIELDS = ("kind", "title", "body", "name", "tax_code", "product", "place", "decision_ref")
STREAM = 1000  # rows fetched at a time
MAX_SHOWN = 200  # characters of a value in a difference


@dataclass(frozen=True)
class Difference:
    """One row where a table and the log disagree: which row, what the table says, what the log says."""

    table: str
    row: str
    field: str
    table_says: str
    log_says: str

    def __str__(self) -> str:
        if self.table == "log":  # the log disagrees with itself: no table to name
            return f"log {self.row}: {self.field}: {self.log_says}"
        return (f"{self.table} {self.row}: {self.field} is {self.table_says} in the table, "
                f"{self.log_says} in the log")


@dataclass
class StateCheck:
    """The differences found (the first ``limit`` of them; ``total`` counts all) and what was compared."""

    differences: list[Difference] = field(default_factory=list)
    total: int = 0
    producers: int = 0
    keys: int = 0
    batches: int = 0
    publications: int = 0
    limit: int = 1000

    @property
    def ok(self) -> bool:
        return self.total == 0

    def add(self, table: str, row: str, name: str, table_says: Any, log_says: Any) -> None:
        self.total += 1
        if len(self.differences) < self.limit:
            self.differences.append(Difference(table, row, name, _shown(table_says), _shown(log_says)))


class _Said(str):
    """A description ("absent", "recalled at entry 7"), shown as it is; any other value is shown as JSON."""


def _shown(value: Any) -> str:
    if isinstance(value, _Said):
        return value
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + "…"


def _time(value: datetime | None) -> str | None:
    return rfc3339(value) if value is not None else None


def _day(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass
class _Key:
    index: int
    cert: dict[str, Any]
    status: str = "active"
    compromised_at: str | None = None
    revoked_at: str | None = None


@dataclass(slots=True)
class _Batch:
    index: int  # the entry of its current record
    leaf: bytes


@dataclass
class _Publication:
    record: dict[str, Any]
    leaf: bytes
    withdrawn_at: str | None = None


def compare_state(session: Session, *, limit: int = 1000) -> StateCheck:
    """Replay the log and compare every producer, producer key, batch, recall and publication with it
    (see the module)."""
    check = StateCheck(limit=limit)
    producers: dict[str, tuple[int, dict[str, Any]]] = {}  # id -> (entry index, admission)
    keys: dict[str, _Key] = {}
    batches: dict[tuple[str, str], _Batch] = {}
    recalls: dict[tuple[str, str], dict[int, bytes]] = {}  # batch -> {entry index: leaf hash}
    replaced: dict[tuple[str, str], dict[int, bytes]] = {}  # batch -> {entry index: leaf hash} of records corrected
    publications: dict[int, _Publication] = {}  # by entry index: a few thousand at most, kept whole
    _replay(session, check, producers, keys, batches, recalls, replaced, publications)
    _compare_producers(session, check, producers)
    _compare_keys(session, check, keys)
    _compare_batches(session, check, batches, recalls)
    _compare_recalls(session, check, recalls)
    _compare_versions(session, check, replaced)
    _compare_publications(session, check, publications)
    return check


def _replay(session: Session, check: StateCheck, producers: dict[str, tuple[int, dict[str, Any]]],
            keys: dict[str, _Key], batches: dict[tuple[str, str], _Batch],
            recalls: dict[tuple[str, str], dict[int, bytes]], replaced: dict[tuple[str, str], dict[int, bytes]],
            publications: dict[int, _Publication]) -> None:
    rows = session.execute(select(LogEntry.index, LogEntry.kind, LogEntry.data, LogEntry.leaf_hash)
                           .order_by(LogEntry.index).execution_options(yield_per=STREAM))
    for index, kind, data, leaf in rows:
        obj = json.loads(data)
        t = obj.get("t") if isinstance(obj, dict) else None
        where = f"entry {index}"
        if kind != t:
            check.add("log_entries", where, "kind", kind, t)
        try:
            _replay_one(check, where, index, t, obj, leaf, producers, keys, batches, recalls, replaced, publications)
        except (KeyError, TypeError, AttributeError) as exc:  # a signed object the registry never writes
            check.add("log", where, "data", None,
                      _Said(f"not a well-formed {t!r} entry ({type(exc).__name__}: {exc})"))


def _replay_one(check: StateCheck, where: str, index: int, t: Any, obj: Any, leaf: bytes,
                producers: dict[str, tuple[int, dict[str, Any]]], keys: dict[str, _Key],
                batches: dict[tuple[str, str], _Batch], recalls: dict[tuple[str, str], dict[int, bytes]],
                replaced: dict[tuple[str, str], dict[int, bytes]], publications: dict[int, _Publication]) -> None:
    if t == "producer":
        producer_id = obj["id"]
        if producer_id in producers:
            check.add("log", where, f"producer {producer_id}", None,
                      _Said(f"admitted again (first at entry {producers[producer_id][0]})"))
        producers[producer_id] = (index, obj)
    elif t == "producer-key":
        kid = obj["kid"]
        if kid in keys:
            check.add("log", where, f"key {kid}", None, _Said(f"certified again (first at entry {keys[kid].index})"))
        keys[kid] = _Key(index=index, cert=obj)
    elif t == "key-revocation":
        key = keys.get(obj["kid"])
        if key is None:
            check.add("log", where, f"key {obj['kid']}", None, _Said("revoked but never certified before"))
            return
        key.status, key.compromised_at, key.revoked_at = "revoked", obj["compromised_at"], obj["at"]
    elif t == "origin-record":
        name = (obj["gtin"], obj["lot"])
        batch = batches.get(name)
        supersedes = obj.get("supersedes")
        if supersedes is None:
            if batch is not None:
                check.add("log", where, f"batch {name[0]}/{name[1]}", None,
                          _Said(f"registered again (first at entry {batch.index})"))
            batches[name] = _Batch(index=index, leaf=leaf)
        elif batch is None:
            check.add("log", where, f"batch {name[0]}/{name[1]}", None, _Said("corrected but never registered before"))
            batches[name] = _Batch(index=index, leaf=leaf)
        else:
            if supersedes.get("index") != batch.index:
                check.add("log", where, f"batch {name[0]}/{name[1]}", None,
                          _Said(f"supersedes entry {supersedes.get('index')!r}, not its current record "
                                f"(entry {batch.index})"))
            replaced.setdefault(name, {})[batch.index] = batch.leaf
            batch.index, batch.leaf = index, leaf
    elif t == "recall":
        name = (obj["gtin"], obj["lot"])
        if name not in batches:
            check.add("log", where, f"batch {name[0]}/{name[1]}", None, _Said("recalled but never registered before"))
        recalls.setdefault(name, {})[index] = leaf
    elif t == "publication":
        publications[index] = _Publication(record=obj, leaf=leaf)
    elif t == "publication-withdrawal":
        published = publications.get(obj["log_index"])
        if published is None or published.record["sig"]["value"] != obj["publication"]:
            check.add("log", where, f"publication at entry {obj['log_index']!r}", None,
                      _Said("withdrawn but not published there before"))
        elif published.withdrawn_at is not None:
            check.add("log", where, f"publication at entry {obj['log_index']}", None, _Said("withdrawn twice"))
        else:
            published.withdrawn_at = obj["at"]
    else:
        check.add("log", where, "t", None, _Said(f"{t!r} is not a kind the replay knows"))


def _compare_producers(session: Session, check: StateCheck, producers: dict[str, tuple[int, dict[str, Any]]]) -> None:
    """Each producer row is the one its admission logged, column by column (an instance upgraded
    from a version that did not log admissions logs its producers once: ``log producers``)."""
    rows = session.execute(
        select(Producer.id, Producer.name, Producer.tax_code, Producer.country, Producer.gs1_prefixes,
               Producer.created_at).order_by(Producer.id).execution_options(yield_per=STREAM))
    for producer_id, name, tax_code, country, prefixes, created_at in rows:
        check.producers += 1
        row = f"id={producer_id}"
        logged = producers.pop(producer_id, None)
        if logged is None:
            check.add("producers", row, "admission", _Said("present"),
                      _Said("absent: no producer entry (admitted before admissions were logged? "
                            "check the row, then: python -m app log producers)"))
            continue
        index, admission = logged
        for column, table_says, log_says in [
            ("name", name, admission.get("name")),
            ("tax_code", tax_code, admission.get("tax_code")),
            ("country", country, admission.get("country")),
            ("gs1_prefixes", sorted(set(prefixes or [])), sorted(set(admission.get("gs1_prefixes") or []))),
            ("created_at", _time(created_at), admission.get("at")),
        ]:
            if table_says != log_says:
                check.add("producers", row, column, table_says, _Said(f"{_shown(log_says)} (entry {index})"))
    for producer_id, (index, _) in producers.items():
        check.add("producers", f"id={producer_id}", "row", _Said("absent"), _Said(f"admitted at entry {index}"))


def _compare_keys(session: Session, check: StateCheck, keys: dict[str, _Key]) -> None:
    rows = session.execute(
        select(ProducerKey.kid, ProducerKey.producer_id, ProducerKey.public_key, ProducerKey.gs1_prefixes,
               ProducerKey.not_before, ProducerKey.not_after, ProducerKey.status, ProducerKey.compromised_at,
               ProducerKey.revoked_at, ProducerKey.log_index)
        .order_by(ProducerKey.kid).execution_options(yield_per=STREAM))
    for kid, producer_id, public_key, prefixes, not_before, not_after, status, compromised_at, revoked_at, \
            log_index in rows:
        check.keys += 1
        row = f"kid={kid}"
        logged = keys.pop(kid, None)
        if logged is None:
            check.add("producer_keys", row, "certification", _Said("present"), _Said("absent: no producer-key entry"))
            continue
        cert = logged.cert
        compared = [
            ("status", status, logged.status),
            ("compromised_at", _time(compromised_at), logged.compromised_at),
            ("revoked_at", _time(revoked_at), logged.revoked_at),
            ("gs1_prefixes", sorted(set(prefixes or [])), sorted(set(cert.get("gs1_prefixes") or []))),
            ("producer_id", producer_id, cert.get("producer_id")),
            ("public_key", public_key, cert.get("public_key")),
            ("not_before", _time(not_before), cert.get("not_before")),
            ("not_after", _time(not_after), cert.get("not_after")),
            ("log_index", log_index, logged.index),
        ]
        for name, table_says, log_says in compared:
            if table_says != log_says:
                check.add("producer_keys", row, name, table_says, log_says)
    for kid, logged in keys.items():
        check.add("producer_keys", f"kid={kid}", "row", _Said("absent"), _Said(f"certified at entry {logged.index}"))


def _compare_batches(session: Session, check: StateCheck, batches: dict[tuple[str, str], _Batch],
                     recalls: dict[tuple[str, str], dict[int, bytes]]) -> None:
    rows = session.execute(
        select(Batch.gtin, Batch.lot, Batch.producer_id, Batch.record, Batch.status, Batch.product_name,
               Batch.production_date, Batch.expiry_date, Batch.log_index)
        .order_by(Batch.id).execution_options(yield_per=STREAM))
    for gtin, lot, producer_id, record, status, product_name, production_date, expiry_date, log_index in rows:
        check.batches += 1
        name = (gtin, lot)
        row = f"{gtin}/{lot}"
        logged = batches.pop(name, None)
        if logged is None:
            check.add("batches", row, "registration", _Said("present"), _Said("absent: no origin-record entry"))
            continue
        if log_index != logged.index:
            check.add("batches", row, "log_index", log_index, _Said(f"{logged.index} (its current record)"))
        if leaf_hash(log_bytes(record)) != logged.leaf:
            entry = session.get(LogEntry, logged.index)
            logged_record = json.loads(entry.data)
            if not isinstance(record, dict):
                check.add("batches", row, "record", record, _Said(f"an origin record (entry {logged.index})"))
                record = {}
            for part in sorted(set(record) | set(logged_record)):
                if record.get(part) != logged_record.get(part):
                    check.add("batches", row, f"record.{part}", record.get(part, _Said("absent")),
                              _Said(f"{_shown(logged_record.get(part, _Said('absent')))} (entry {logged.index})"))
        else:
            logged_record = record
        product = logged_record.get("product") if isinstance(logged_record.get("product"), dict) else {}
        for column, table_says, log_says in [
            ("product_name", product_name, product.get("name")),
            ("production_date", _day(production_date), logged_record.get("production_date")),
            ("expiry_date", _day(expiry_date), logged_record.get("expiry_date") or None),
            ("producer_id", producer_id, logged_record.get("producer_id", producer_id)),
        ]:
            if table_says != log_says:
                check.add("batches", row, column, table_says, log_says)
        recalled = recalls.get(name)
        log_status = "recalled" if recalled else "active"
        if status != log_status:
            why = f" (recall at entry {min(recalled)})" if recalled else " (no recall entry)"
            check.add("batches", row, "status", status, _Said(f"{_shown(log_status)}{why}"))
    for (gtin, lot), logged in batches.items():
        check.add("batches", f"{gtin}/{lot}", "row", _Said("absent"),
                  _Said(f"registered (current record at entry {logged.index})"))


def _compare_recalls(session: Session, check: StateCheck, recalls: dict[tuple[str, str], dict[int, bytes]]) -> None:
    """Each recall row (where verification and the trust list read a recall's reason and time) is one
    logged recall of its batch, as logged; each logged recall has its row."""
    unmatched = {name: dict(entries) for name, entries in recalls.items()}
    rows = session.execute(
        select(Recall.id, Batch.gtin, Batch.lot, Recall.reason, Recall.at, Recall.record, Recall.log_index)
        .join(Batch, Batch.id == Recall.batch_id).order_by(Recall.id).execution_options(yield_per=STREAM))
    for recall_id, gtin, lot, reason, at, record, log_index in rows:
        row = f"id={recall_id} ({gtin}/{lot})"
        logged = unmatched.get((gtin, lot), {})
        leaf = logged.pop(log_index, None)
        if leaf is None:
            check.add("recalls", row, "log_index", log_index, _Said(f"not a recall of {gtin}/{lot} in the log"))
            continue
        if leaf_hash(log_bytes(record)) != leaf:
            check.add("recalls", row, "record", record, _Said(f"another record (entry {log_index})"))
            continue
        for name, table_says, log_says in [
            ("reason", reason, record.get("reason")),
            ("at", _time(at), record.get("at")),
            ("gtin/lot", f"{gtin}/{lot}", f"{record.get('gtin')}/{record.get('lot')}"),
        ]:
            if table_says != log_says:
                check.add("recalls", row, name, table_says, log_says)
    for (gtin, lot), entries in unmatched.items():
        for index in sorted(entries):
            check.add("recalls", f"of {gtin}/{lot}", "row", _Said("absent"), _Said(f"recalled at entry {index}"))


def _compare_versions(session: Session, check: StateCheck, replaced: dict[tuple[str, str], dict[int, bytes]]) -> None:
    """Each kept version (``GET /batches/...`` lists them) is a record of its batch that a logged
    correction replaced, as logged; each record a correction replaced is kept."""
    unmatched = {name: dict(entries) for name, entries in replaced.items()}
    rows = session.execute(
        select(BatchVersion.id, Batch.gtin, Batch.lot, BatchVersion.record, BatchVersion.log_index)
        .join(Batch, Batch.id == BatchVersion.batch_id).order_by(BatchVersion.id)
        .execution_options(yield_per=STREAM))
    for version_id, gtin, lot, record, log_index in rows:
        row = f"id={version_id} ({gtin}/{lot})"
        leaf = unmatched.get((gtin, lot), {}).pop(log_index, None)
        if leaf is None:
            check.add("batch_versions", row, "log_index", log_index,
                      _Said(f"not a record of {gtin}/{lot} that a correction replaced"))
        elif leaf_hash(log_bytes(record)) != leaf:
            check.add("batch_versions", row, "record", record, _Said(f"another record (entry {log_index})"))
    for (gtin, lot), entries in unmatched.items():
        for index in sorted(entries):
            check.add("batch_versions", f"of {gtin}/{lot}", "row", _Said("absent"),
                      _Said(f"the record at entry {index}, replaced by a correction"))


def _compare_publications(session: Session, check: StateCheck, publications: dict[int, _Publication]) -> None:
    """Each publication row is a logged publication, column by column as signed, withdrawn when and
    only when a withdrawal of it is logged; each logged publication has its row."""
    rows = session.execute(
        select(Publication.id, Publication.record, Publication.decided_on, Publication.published_at,
               Publication.withdrawn_at, Publication.log_index, *(getattr(Publication, f) for f in PUBLICATION_FIELDS))
        .order_by(Publication.id).execution_options(yield_per=STREAM))
    for publication_id, record, decided_on, published_at, withdrawn_at, log_index, *columns in rows:
        check.publications += 1
        row = f"id={publication_id}"
        logged = publications.pop(log_index, None)
        if logged is None:
            check.add("publications", row, "log_index", log_index, _Said("not a publication entry"))
            continue
        if leaf_hash(log_bytes(record)) != logged.leaf:
            check.add("publications", row, "record", record, _Said(f"another record (entry {log_index})"))
        signed = logged.record
        compared = [(f, table_says, signed.get(f)) for f, table_says in zip(PUBLICATION_FIELDS, columns)] + [
            ("decided_on", _day(decided_on), signed.get("decided_on")),
            ("published_at", _time(published_at), signed.get("published_at")),
            ("withdrawn_at", _time(withdrawn_at), logged.withdrawn_at),
        ]
        for name, table_says, log_says in compared:
            if table_says != log_says:
                check.add("publications", row, name, table_says, log_says)
    for index in sorted(publications):
        check.add("publications", f"of entry {index}", "row", _Said("absent"), _Said(f"published at entry {index}"))
