"""National scale on PostgreSQL: 100,000 batches, 10 million scan events, and GET /verify latency
for codes with an empty history beside codes with a huge one.

    .venv/bin/python bench/national.py [--batches 100000] [--events 10000000] [--serials 1000000]
                                       [--requests 2000] [--keep] [--resume] [--json FILE]

What it builds, in database ``bench_national`` (dropped at the end unless ``--keep``):
- 20 producers with certified custodial keys (through ``Registry``), 100,000 batches of signed
  origin records over 5,000 GTINs, each in the transparency log (entries, Merkle nodes and a
  signed checkpoint; ``TransparencyLog.verify_all`` checks the result), written with COPY;
- 1,000,000 serials in one batch out of ten, each signed as ``sign_code`` signs it, by COPY;
- scan events: 80 % on serials with a Zipf-like rank law (count = 1 + C / rank^1.1, so most
  serials are scanned once or twice and the top one about a million times, by many clients: the
  pattern of a cloned code), 20 % on batch-level codes (count = C / rank^1.2); 5,000 serials
  and 1,000 batches are kept without any event, to measure empty histories. Events are expanded
  server-side from a COPY of the per-code counts (INSERT ... SELECT generate_series), the
  secondary indexes are rebuilt afterwards, and the summary counters on serials and batches
  (scan_count, distinct_clients, first/last seen, last place and its network, flagged) and
  serial_clients are computed from the events, so they agree with them. Each event has a client
  network; the 20 next most scanned serials after the hot ones have their many clients on 3
  networks, so they are not clones and every verification of them counts networks again.

Latency: GET /api/v1/verify through the Flask test client in this process (no HTTP server:
the database side is what grows), sequential. Before the events are written, the registry is
copied to a second database, ``bench_national_empty`` (``CREATE DATABASE ... TEMPLATE``): the
same batches, serials and keys with an empty scan history. Each code is then verified in both
databases, one request after the other, the order alternating and the classes of codes
interleaved, so that the two histories share the machine's noise (these machines are shared: a
measurement minutes earlier, on the same database before its events, differed from the later one
by as much as the target allows). Both databases' verification tables and indexes are first read
into the OS page cache (``pg_prewarm``), so that neither is measured cold. Every request is a
real verification: it reads the counters and hands its scan event to the scan writer, which
commits them in batches. Requests come from varied addresses (networks), the few-networks
class's from one.
Disk: pg_total_relation_size of scan_events (heap, TOAST, indexes) per million events.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from multiprocessing import Pool
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, median, percentile, temp_instance_config  # noqa: E402
from http_load import copy_database, drop_database, pg_url, recreate_database  # noqa: E402

sys.path.insert(0, str(REPO))

DB = "bench_national"
EMPTY_DB = "bench_national_empty"  # the registry before its events: the empty-history reference
INSTANCE = Path(os.environ.get("BENCH_NATIONAL_INSTANCE", "/tmp/bench-national-instance"))
PRODUCERS = 20
ITEMS_PER_PRODUCER = 250
EMPTY_SERIALS = 5000
EMPTY_BATCHES = 1000
SERIALS_PER_BATCH = 100  # in one batch out of ten (build_serials)
HOT_CODES = 20
# The next 20 most scanned serials: their many clients come from this many networks, not more than
# CLONE_MAX_NETWORKS, so they are not clones and each verification counts their networks again
# (the latest RECENT_NETWORKS_SCANNED events: registry.scans.ScanHistory.networks), the one read that grows with a
# history, bounded.
FEW_NETWORKS = 3
CROWD = "unit code, later hot, few networks"
SERIAL_SHARE = 0.8


def log(msg: str) -> None:
    print(f"[national {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- stages, so that an interrupted build can be resumed -----------------------------------------
def _raw(engine):
    return engine.raw_connection().driver_connection


def stage_done(engine, name: str) -> dict | None:
    with engine.connect() as conn:
        conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS bench_state (stage text PRIMARY KEY, detail jsonb)")
        conn.commit()
        row = conn.exec_driver_sql("SELECT detail FROM bench_state WHERE stage = %(s)s", {"s": name}).first()
    return row[0] if row else None


def mark_done(engine, name: str, detail: dict) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO bench_state VALUES (%(s)s, %(d)s) ON CONFLICT (stage) DO UPDATE "
                             "SET detail = EXCLUDED.detail", {"s": name, "d": json.dumps(detail)})


# -- registry: producers, batches (with their log entries), serials -----------------------------
def _gtin(producer: int, item: int) -> str:
    from biip.checksums import gs1_standard_check_digit

    body = f"0{893600010 + producer}{item:03d}"
    return body + str(gs1_standard_check_digit(body))


def build_producers(app) -> list[dict]:
    from stdnum.vn import mst

    from registry.services import SYSTEM, Registry

    out = []
    with app.extensions["session_factory"]() as session:
        reg = Registry(session, keystore=app.extensions["keystore"], base_url=app.config["BASE_URL"])
        tax_codes = (f"03{n:07d}{mst.calc_check_digit(f'03{n:07d}')}" for n in range(1, 10_000))
        tax_codes = (code for code in tax_codes if mst.is_valid(code))  # a 10 as check digit is never issued
        for p in range(PRODUCERS):
            producer = reg.admit_producer(SYSTEM, name=f"Nhà sản xuất {p:02d}", tax_code=next(tax_codes),
                                          gs1_prefixes=[str(893600010 + p)], country="VN")
            key = reg.certify_key(SYSTEM, producer.id)
            out.append({"id": producer.id, "kid": key.kid})
        session.commit()
    return out


def build_batches(app, producers: list[dict], count: int) -> None:
    """``count`` batches with signed origin records, logged, by COPY; then a signed checkpoint."""
    from keys.encoding import log_bytes, rfc3339
    from keys.signing import sign
    from registry.log import TransparencyLog
    from registry.merkle import leaf_hash, node_hash
    from registry.models import LogNode, LogState
    from registry.services import AUTHORITY_KEY_NAME

    keystore = app.extensions["keystore"]
    signers = {p["kid"]: keystore.load(p["kid"]) for p in producers}
    now = datetime.now(timezone.utc)
    today = now.date()
    names = ("Cà phê rang xay", "Nước mắm Phú Quốc", "Mật ong hoa cà phê", "Trà Shan tuyết", "Hạt điều rang muối",
             "Gạo ST25", "Bánh pía Sóc Trăng", "Nước cốt dừa", "Tiêu Phú Quốc", "Kẹo dừa Bến Tre")
    engine = app.extensions["engine"]
    with app.extensions["session_factory"]() as session:
        state = session.get(LogState, 1)
        start = state.size
        nodes = {(n.level, n.index): n.hash for n in session.query(LogNode).all()}
    batch_rows, entry_rows, node_rows = [], [], []
    created = rfc3339(now)
    lots_per_gtin = max(1, count // (PRODUCERS * ITEMS_PER_PRODUCER))
    for i in range(count):
        p = i % PRODUCERS
        item = (i // PRODUCERS) % ITEMS_PER_PRODUCER
        lot_no = i // (PRODUCERS * ITEMS_PER_PRODUCER)
        producer = producers[p]
        production = today - timedelta(days=1 + (i % 300))
        expiry = production + timedelta(days=365 + (i % 400))
        record = {"t": "origin-record", "gtin": _gtin(p, item), "lot": f"L{lot_no:03d}-{i:06d}",
                  "product": {"name": f"{names[item % len(names)]} {item:03d}", "brand": f"Thương hiệu {p:02d}",
                              "category": "Thực phẩm"},
                  "facility": {"name": f"Xưởng {p:02d}", "address": "Việt Nam", "country": "VN"},
                  "production_date": production.isoformat(), "expiry_date": expiry.isoformat(),
                  "quantity": 1000 + i % 9000, "certifications": [{"scheme": "VietGAP", "id": f"VG-{i:06d}"}],
                  "kid": producer["kid"], "producer_id": producer["id"], "issued_at": created}
        record = sign(record, signers[producer["kid"]])
        index = start + i
        data = log_bytes(record)
        h = leaf_hash(data)
        entry_rows.append((index, "origin-record", data.decode("utf-8"), h, now))
        nodes[(0, index)] = h
        node_rows.append((0, index, h))
        level, j, current = 0, index, h
        while j & 1:  # as TransparencyLog.append: this leaf completes a subtree at the next level
            current = node_hash(nodes[(level, j - 1)], current)
            level += 1
            j >>= 1
            nodes[(level, j)] = current
            node_rows.append((level, j, current))
        batch_rows.append((record["gtin"], record["lot"], producer["id"], producer["kid"], json.dumps(record),
                           record["product"]["name"], production, expiry, "active", 0, 0, index, now))
    log(f"  {count:,} origin records signed and hashed ({lots_per_gtin} lots per GTIN)")
    raw = engine.raw_connection()
    try:
        conn = raw.driver_connection
        with conn.cursor() as cur:
            with cur.copy("COPY batches (gtin, lot, producer_id, kid, record, product_name, production_date, "
                          "expiry_date, status, serial_count, scan_count, log_index, created_at) FROM STDIN") as copy:
                for row in batch_rows:
                    copy.write_row(row)
            with cur.copy("COPY log_entries (index, kind, data, leaf_hash, created_at) FROM STDIN") as copy:
                for row in entry_rows:
                    copy.write_row(row)
            with cur.copy("COPY log_nodes (level, index, hash) FROM STDIN") as copy:
                for row in node_rows:
                    copy.write_row(row)
            cur.execute("UPDATE log_state SET size = %s WHERE id = 1", (start + count,))
        conn.commit()
    finally:
        raw.close()
    with app.extensions["session_factory"]() as session:
        TransparencyLog(session, authority=keystore.load(AUTHORITY_KEY_NAME)).sign_checkpoint()
        session.commit()


def _sign_serials(args: tuple[bytes, list[tuple[int, str, str, str, str]]]) -> list[tuple[int, str, str]]:
    """In a worker process: sign the unit codes of some batches. Rows (batch_id, gtin, lot, exp, serial)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from keys.signing import Signer, sign_code

    private, rows = args
    signer = Signer.from_private_key(Ed25519PrivateKey.from_private_bytes(private))
    return [(batch_id, serial, sign_code(signer, gtin=gtin, lot=lot, serial=serial, exp=exp))
            for batch_id, gtin, lot, exp, serial in rows]


def build_serials(app, producers: list[dict], count: int) -> None:
    """``count`` serials, 100 per batch in one batch of ten, signed in two processes, by COPY."""
    from cryptography.hazmat.primitives import serialization

    from registry.rules import yymmdd
    from registry.services import SERIAL_ALPHABET, SERIAL_LENGTH

    engine = app.extensions["engine"]
    per_batch = SERIALS_PER_BATCH
    keystore = app.extensions["keystore"]
    privates = {p["kid"]: keystore.load(p["kid"]).private_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
        for p in producers}
    with engine.connect() as conn:
        batches = conn.exec_driver_sql(
            "SELECT id, gtin, lot, expiry_date, kid FROM batches WHERE id %% 10 = 3 ORDER BY id LIMIT %(n)s",
            {"n": count // per_batch}).all()
    rng = random.Random(2026)
    jobs: dict[str, list] = {}
    for batch_id, gtin, lot, expiry, kid in batches:
        exp = yymmdd(expiry)
        for _ in range(per_batch):
            serial = "".join(rng.choices(SERIAL_ALPHABET, k=SERIAL_LENGTH))
            jobs.setdefault(kid, []).append((batch_id, gtin, lot, exp, serial))
    chunks = []
    for kid, rows in jobs.items():
        for k in range(0, len(rows), 20_000):
            chunks.append((privates[kid], rows[k:k + 20_000]))
    now = datetime.now(timezone.utc)
    raw = engine.raw_connection()
    try:
        conn = raw.driver_connection
        with Pool(max(1, min(2, os.cpu_count() or 1))) as pool, conn.cursor() as cur:
            with cur.copy("COPY serials (batch_id, serial, s, created_at, scan_count, distinct_clients) "
                          "FROM STDIN") as copy:
                for signed in pool.imap_unordered(_sign_serials, chunks):
                    for batch_id, serial, s in signed:
                        copy.write_row((batch_id, serial, s, now, 0, 0))
            cur.execute("UPDATE batches b SET serial_count = c.n FROM (SELECT batch_id, count(*) n FROM serials "
                        "GROUP BY batch_id) c WHERE b.id = c.batch_id")
        conn.commit()
    finally:
        raw.close()


# -- scan events --------------------------------------------------------------------------------
def zipf_counts(n: int, total: int, *, exponent: float, floor_one: bool) -> list[int]:
    """Counts for ranks 1..n: (1 if floor_one) + int(C / rank^exponent), C chosen so they sum to ~total."""
    import numpy as np

    ranks = np.arange(1, n + 1, dtype=np.float64)
    base = 1 if floor_one else 0
    weights = ranks ** -exponent
    lo, hi = 0.0, float(total)
    for _ in range(60):
        c = (lo + hi) / 2
        s = int(base * n + np.floor(c * weights).sum())
        lo, hi = (c, hi) if s < total else (lo, c)
    counts = (base + np.floor(lo * weights)).astype(np.int64)
    counts[0] += total - int(counts.sum())  # exact total: the remainder goes to the most popular code
    return counts.tolist()


def build_events(app, total: int, selection: dict) -> dict:
    """``total`` scan events on the codes outside ``selection``'s empty ones, ranked as _select drew them."""
    engine = app.extensions["engine"]
    with engine.connect() as conn:
        batch_of = dict(conn.exec_driver_sql("SELECT id, batch_id FROM serials").all())
    empty_serials, empty_batches = set(selection["empty_serial_ids"]), set(selection["empty_batch_ids"])
    ranked_serials = [(sid, batch_of[sid]) for sid in selection["serial_order"] if sid not in empty_serials]
    ranked_batches = [bid for bid in selection["batch_order"] if bid not in empty_batches]
    crowd = set(selection["crowd_serial_ids"])
    serial_total = int(total * SERIAL_SHARE)
    s_counts = zipf_counts(len(ranked_serials), serial_total, exponent=1.1, floor_one=True)
    b_counts = zipf_counts(len(ranked_batches), total - serial_total, exponent=1.2, floor_one=False)
    log(f"  counts: top serial {s_counts[0]:,}, serial median {s_counts[len(s_counts) // 2]}, "
        f"top batch code {b_counts[0]:,}")
    raw = engine.raw_connection()
    try:
        conn = raw.driver_connection
        with conn.cursor() as cur:
            cur.execute("SET synchronous_commit = off")
            cur.execute("SET maintenance_work_mem = '512MB'")
            cur.execute("SET session_replication_role = replica")  # the rows are consistent by construction
            cur.execute("CREATE UNLOGGED TABLE bench_counts (serial_id bigint, batch_id bigint, n int, clients int, "
                        "networks int)")
            with cur.copy("COPY bench_counts FROM STDIN") as copy:
                for (sid, bid), n in zip(ranked_serials, s_counts):
                    clients = 1 if n <= 3 else max(1, int(n * 0.6))
                    # a crowd of clients behind few networks (one shop's wifi, one carrier's NAT)
                    networks = FEW_NETWORKS if sid in crowd else max(1, clients // 2)
                    copy.write_row((sid, bid, n, clients, networks))
                for bid, n in zip(ranked_batches, b_counts):
                    if n:
                        clients = max(1, int(n * 0.8))
                        copy.write_row((None, bid, n, clients, max(1, clients // 2)))
            # secondary indexes of scan_events: kept aside, rebuilt after the load (same definitions)
            cur.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'scan_events' "
                        "AND indexname NOT IN (SELECT conname FROM pg_constraint "
                        "WHERE conrelid = 'scan_events'::regclass)")
            indexes = cur.fetchall()
            for name, _ in indexes:
                cur.execute(f'DROP INDEX "{name}"')
            conn.commit()
            started = time.perf_counter()
            cur.execute("""
                INSERT INTO scan_events (batch_id, serial_id, at, channel, client_hash, network_hash, lat, lon, verdict)
                SELECT c.batch_id, c.serial_id,
                       now() - interval '1 hour' - random() * interval '365 days',
                       (ARRAY['page', 'api', 'image', 'page'])[1 + g % 4],
                       substr(md5(coalesce(c.serial_id, -c.batch_id)::text || ':' || (g % c.clients)::text), 1, 32),
                       substr(md5('net:' || coalesce(c.serial_id, -c.batch_id)::text || ':'
                                  || (g % c.clients % c.networks)::text), 1, 32),
                       CASE WHEN g % 4 = 0 THEN round((8.6 + random() * 14.4)::numeric, 1)::float8 END,
                       CASE WHEN g % 4 = 0 THEN round((102.2 + random() * 7.2)::numeric, 1)::float8 END,
                       CASE WHEN c.serial_id IS NOT NULL AND c.clients > 10 AND c.networks > 5 AND g > 10
                            THEN 'suspect' ELSE 'genuine' END
                FROM bench_counts c, generate_series(1, c.n) g""")
            conn.commit()
            log(f"  {total:,} scan events inserted in {time.perf_counter() - started:.0f} s")
            started = time.perf_counter()
            for _, definition in indexes:
                cur.execute(definition)
            conn.commit()
            log(f"  {len(indexes)} secondary indexes rebuilt in {time.perf_counter() - started:.0f} s")
            started = time.perf_counter()
            cur.execute("""
                INSERT INTO serial_clients (serial_id, client_hash)
                SELECT c.serial_id, substr(md5(c.serial_id::text || ':' || k::text), 1, 32)
                FROM bench_counts c, generate_series(0, c.clients - 1) k WHERE c.serial_id IS NOT NULL""")
            cur.execute("""
                UPDATE serials s SET scan_count = e.n, distinct_clients = c.clients, first_seen = e.first,
                       last_seen = e.last,
                       flagged = CASE WHEN c.clients > %s AND c.networks > %s THEN 'SERIAL_CLONED' END
                FROM (SELECT serial_id, count(*) n, min(at) first, max(at) last FROM scan_events
                      WHERE serial_id IS NOT NULL GROUP BY serial_id) e
                JOIN bench_counts c ON c.serial_id = e.serial_id
                WHERE s.id = e.serial_id""", (int(app.config["CLONE_MAX_CLIENTS"]), int(app.config["CLONE_MAX_NETWORKS"])))
            cur.execute("""
                UPDATE serials s SET last_lat = p.lat, last_lon = p.lon, last_network = p.network_hash
                FROM (SELECT DISTINCT ON (serial_id) serial_id, lat, lon, network_hash FROM scan_events
                      WHERE serial_id IS NOT NULL AND lat IS NOT NULL ORDER BY serial_id, at DESC) p
                WHERE s.id = p.serial_id""")
            cur.execute("""
                UPDATE batches b SET scan_count = e.n, first_seen = e.first
                FROM (SELECT batch_id, count(*) n, min(at) first FROM scan_events
                      WHERE serial_id IS NULL GROUP BY batch_id) e WHERE b.id = e.batch_id""")
            cur.execute("DROP TABLE bench_counts")
            cur.execute("SET session_replication_role = origin")
            conn.commit()
            log(f"  summary counters and serial_clients computed in {time.perf_counter() - started:.0f} s")
            conn.autocommit = True
            started = time.perf_counter()
            cur.execute("VACUUM ANALYZE scan_events")
            cur.execute("VACUUM ANALYZE serials")
            cur.execute("VACUUM ANALYZE serial_clients")
            cur.execute("VACUUM ANALYZE batches")
            conn.autocommit = False  # back to the pool as it came (the export's server-side cursor needs a transaction)
            log(f"  VACUUM ANALYZE in {time.perf_counter() - started:.0f} s")
    finally:
        raw.close()
    return {"top_serial_events": s_counts[0], "top_batch_events": b_counts[0],
            "serial_events": serial_total, "batch_events": total - serial_total,
            "serial_median_events": s_counts[len(s_counts) // 2]}


def check_consistency(engine) -> dict:
    with engine.connect() as conn:
        q = conn.exec_driver_sql
        return {
            "scan_events": q("SELECT count(*) FROM scan_events").scalar(),
            "serial_counters_mismatched": q(
                "SELECT count(*) FROM serials s LEFT JOIN (SELECT serial_id, count(*) n FROM scan_events "
                "WHERE serial_id IS NOT NULL GROUP BY serial_id) e ON e.serial_id = s.id "
                "WHERE s.scan_count <> coalesce(e.n, 0)").scalar(),
            "distinct_clients_mismatched": q(
                "SELECT count(*) FROM serials s LEFT JOIN (SELECT serial_id, count(*) n FROM serial_clients "
                "GROUP BY serial_id) c ON c.serial_id = s.id WHERE s.distinct_clients <> coalesce(c.n, 0)").scalar(),
            "batch_counters_mismatched": q(
                "SELECT count(*) FROM batches b LEFT JOIN (SELECT batch_id, count(*) n FROM scan_events "
                "WHERE serial_id IS NULL GROUP BY batch_id) e ON e.batch_id = b.id "
                "WHERE b.scan_count <> coalesce(e.n, 0)").scalar(),
        }


def disk(engine) -> dict:
    with engine.connect() as conn:
        q = conn.exec_driver_sql
        events = q("SELECT count(*) FROM scan_events").scalar()
        out = {"scan_events_rows": events}
        for table in ("scan_events", "serial_clients", "serials", "batches", "log_entries"):
            total, heap, idx = q(f"SELECT pg_total_relation_size('{table}'), pg_relation_size('{table}'), "
                                 f"pg_indexes_size('{table}')").first()
            out[table] = {"total_mb": total / 2**20, "heap_mb": heap / 2**20, "indexes_mb": idx / 2**20}
        out["scan_events_mb_per_million"] = out["scan_events"]["total_mb"] / (events / 1e6) if events else None
        out["database_mb"] = q("SELECT pg_database_size(current_database())").scalar() / 2**20
    return out


# -- exports ------------------------------------------------------------------------------------
EXPORT_PAGE = 1000
EXPORT_PAGES = 5



def _export_pages(exports, actor, token, **kwargs) -> tuple[list[float], int]:
    """Up to EXPORT_PAGES pages of EXPORT_PAGE events from ``token`` (None: the start), each timed:
    (ms per page, events read)."""
    times, events = [], 0
    for _ in range(EXPORT_PAGES):
        start = time.perf_counter()
        page = exports.epcis_page(actor, limit=EXPORT_PAGE, page_token=token, **kwargs)
        events += len(list(page))
        times.append((time.perf_counter() - start) * 1000)
        token = page.next_token
        if token is None:
            break
    return times, events

def export_pages(app) -> dict:
    """The EPCIS export of the last day's scan events, ``EXPORT_PAGES`` pages of ``EXPORT_PAGE``
    events followed by their tokens, as an agency pages through it: ms per page with the index
    (at, id), and in a transaction that drops it (rolled back: PostgreSQL's DDL is transactional)
    without, which is how the export read before migration 0004. Then the registrations
    (commissioning events) from the start, the same way, with the index (created_at, id) and
    without it (before migration 0016): every batch here was registered in the same second, the
    worst case for paging by position, pages from the middle of the table included."""
    from sqlalchemy import text

    from registry.exports import REGISTRATION, ExportService, PagePosition
    from registry.services import Actor, Role

    actor = Actor(role=Role.AUTHORITY)
    out = {}
    with app.extensions["session_factory"]() as session:
        since = session.execute(text("SELECT max(at) FROM scan_events")).scalar() - timedelta(days=1)
        out["events_in_window"] = session.execute(
            text("SELECT count(*) FROM scan_events WHERE at >= :since"), {"since": since}).scalar()
    for label in ("with the index (at, id)", "without it"):
        with app.extensions["session_factory"]() as session:
            if label == "without it":
                session.execute(text("DROP INDEX ix_scan_events_at_id"))
            times, events = _export_pages(ExportService(session), actor, None, since=since, events="scans")
            session.rollback()  # without it: the index is back
        out[label] = {"pages": len(times), "events": events, "median_ms": median(times), "max_ms": max(times)}
        log(f"export, {label}: {out[label]}")
    out["registrations"] = {}
    with app.extensions["session_factory"]() as session:
        batches = session.execute(text("SELECT count(*) FROM batches")).scalar()
    for label in ("with the index (created_at, id)", "without it"):
        with app.extensions["session_factory"]() as session:
            if label == "without it":
                session.execute(text("DROP INDEX ix_batches_created_at_id"))
            times, events = [], 0
            # the first pages, then pages from the middle of the table (a token made there)
            middle = session.execute(text("SELECT created_at, id FROM batches ORDER BY created_at, id "
                                          "OFFSET :n LIMIT 1"), {"n": batches // 2}).one()
            for start in (None, PagePosition(at=middle[0], kind=REGISTRATION, row_id=middle[1]).token()):
                more_times, more_events = _export_pages(ExportService(session), actor, start, events="registrations")
                times += more_times
                events += more_events
            session.rollback()  # without it: the index is back
        out["registrations"][label] = {"pages": len(times), "events": events, "median_ms": median(times),
                                       "max_ms": max(times)}
        log(f"export of registrations, {label}: {out['registrations'][label]}")
    return out


# -- latency ------------------------------------------------------------------------------------
def code_urls(app, *, serial_ids: list[int], batch_ids: list[int]) -> tuple[list[str], list[str]]:
    from registry.models import Batch, Serial
    from registry.services import Registry

    with app.extensions["session_factory"]() as session:
        reg = Registry(session, keystore=app.extensions["keystore"], base_url=app.config["BASE_URL"])
        serial_urls = []
        for sid in serial_ids:
            serial = session.get(Serial, sid)
            serial_urls.append(reg.serial_url(session.get(Batch, serial.batch_id), serial.serial, serial.s))
        batch_urls = [reg.batch_url(session.get(Batch, bid)) for bid in batch_ids]
    return serial_urls, batch_urls


def measure(apps: dict, classes: dict[str, list[str]], requests: int, *, distinct: set[str]) -> dict:
    """Sequential GET /api/v1/verify in process: every code in each database of ``apps`` ({label:
    app}), one right after the other, the order alternating; the classes interleaved. Codes of
    classes in ``distinct`` are each used once (an empty history stays empty); the others are
    cycled. Returns {label: {class: figures}}."""
    clients = {label: app.test_client() for label, app in apps.items()}
    times = {label: {name: [] for name in classes} for label in apps}
    verdicts = {label: {name: {} for name in classes} for label in apps}
    scans = {label: {name: [] for name in classes} for label in apps}
    warm_codes = [codes[0] for name, codes in classes.items() if "hot" in name]
    for client in clients.values():  # warm-up: first-request costs, pool, SQLAlchemy's statement cache
        for warm in range(50):
            client.get("/api/v1/verify", query_string={"code": warm_codes[warm % len(warm_codes)], "client_id": "warm"})
    turns = list(clients.items())
    for i in range(requests):
        for name, codes in classes.items():
            code = codes[i] if name in distinct else codes[i % len(codes)]
            query = {"code": code}
            # Shoppers come from many networks; the crowd class's from one (and without a place,
            # which another network's place could turn into a clone by speed).
            address = "198.51.100.7" if name == CROWD else f"10.{i % 251}.{(i * 7) % 253}.{i % 199 + 1}"
            if i % 4 == 0 and name != CROWD:
                query.update(lat=f"{10.7 + (i % 50) / 10:.2f}", lon=f"{106.6 - (i % 30) / 10:.2f}")
            for label, client in (turns if i % 2 == 0 else turns[::-1]):
                query["client_id"] = uuid.uuid4().hex
                start = time.perf_counter()
                response = client.get("/api/v1/verify", query_string=query, environ_base={"REMOTE_ADDR": address})
                times[label][name].append((time.perf_counter() - start) * 1000)
                body = response.get_json(silent=True) or {}
                verdict = body.get("verdict", f"http-{response.status_code}")
                verdicts[label][name][verdict] = verdicts[label][name].get(verdict, 0) + 1
                if i % 100 == 0:
                    scans[label][name].append(int((body.get("scans") or {}).get("count") or 0))
    for app in apps.values():
        app.extensions["scan_writer"].flush()  # the measurement's own scans are written before anyone counts
    return {label: {name: {"requests": len(t), "p50_ms": median(t), "p99_ms": percentile(t, 99),
                           "mean_ms": sum(t) / len(t), "verdicts": verdicts[label][name],
                           "history_seen": max(scans[label][name]) if scans[label][name] else 0}
                    for name, t in times[label].items()}
            for label in apps}


# What a verification reads (and the writer updates), with their indexes.
VERIFICATION_TABLES = ["batches", "serials", "serial_clients", "log_state", "scan_writers", "producer_keys"]


def prewarm(app) -> int:
    """Read the tables a verification touches, and their indexes, into the OS page cache
    (``pg_prewarm`` in 'read' mode): the build left the full database's in it (VACUUM ANALYZE
    read them), not the copy's, whose fresh codes would otherwise be measured cold. Returns the
    blocks read."""
    with app.extensions["engine"].begin() as conn:
        conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
        return int(conn.exec_driver_sql(
            "SELECT coalesce(sum(pg_prewarm(c.oid, 'read')), 0) FROM pg_class c "
            "WHERE c.relname = ANY(%(t)s) OR c.oid IN (SELECT i.indexrelid FROM pg_index i "
            "JOIN pg_class r ON r.oid = i.indrelid WHERE r.relname = ANY(%(t)s))",
            {"t": VERIFICATION_TABLES}).scalar())


def copy_registry(app) -> dict:
    """The registry as built so far (no scan event yet) copied to ``EMPTY_DB``; this app's
    connections are closed first (a template database must have none)."""
    for name in ("engine", "read_engine"):
        app.extensions[name].dispose()
    started = time.perf_counter()
    copy_database(DB, EMPTY_DB)
    return {"seconds": round(time.perf_counter() - started, 1)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=100_000)
    parser.add_argument("--serials", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--requests", type=int, default=2000, help="requests per class of code and phase")
    parser.add_argument("--keep", action="store_true", help="keep the database (and /tmp instance) afterwards")
    parser.add_argument("--resume", action="store_true", help="reuse a kept or interrupted build")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)
    _check_sizes(parser, args)
    args.requests = min(args.requests, EMPTY_SERIALS)  # a fresh unit code per request

    from app import create_app
    from app.cli import init_instance
    from registry.log import TransparencyLog

    t_all = time.perf_counter()
    url = pg_url(DB)
    if not args.resume:
        recreate_database(DB)
        import shutil

        shutil.rmtree(INSTANCE, ignore_errors=True)
    cfg = temp_instance_config(url)
    cfg["INSTANCE_DIR"] = str(INSTANCE)
    app = create_app(cfg)
    engine = app.extensions["engine"]
    timings: dict[str, float] = {}
    figures: dict = {"batches": args.batches, "serials": args.serials, "events": args.events,
                     "requests_per_class": args.requests}

    def stage(name: str, fn):
        done = stage_done(engine, name)
        if done is not None:
            log(f"{name}: done before, skipped")
            return done
        log(f"{name} ...")
        started = time.perf_counter()
        detail = fn() or {}
        timings[name] = time.perf_counter() - started
        mark_done(engine, name, detail)
        log(f"{name}: {timings[name]:.0f} s")
        return detail

    init_instance(app)
    producers = stage("producers", lambda: {"producers": build_producers(app)})["producers"]
    stage("batches", lambda: build_batches(app, producers, args.batches))
    stage("serials", lambda: build_serials(app, producers, args.serials))
    figures["build_seconds_before_events"] = round(sum(timings.values()), 1)

    # which codes are measured: chosen now, before the events exist (fixed seed: same on --resume)
    with engine.connect() as conn:
        serial_ids = [r[0] for r in conn.exec_driver_sql("SELECT id FROM serials ORDER BY id")]
        plain_ids = [r[0] for r in conn.exec_driver_sql("SELECT id FROM batches WHERE serial_count = 0 ORDER BY id")]
    selection = stage("selection", lambda: _select(serial_ids, plain_ids))
    fresh_serials, fresh_batches = code_urls(app, serial_ids=selection["empty_serial_ids"][:args.requests],
                                             batch_ids=selection["empty_batch_ids"])
    hot_serials, hot_batches = code_urls(app, serial_ids=selection["hot_serial_ids"],
                                         batch_ids=selection["hot_batch_ids"])
    crowd_serials, _ = code_urls(app, serial_ids=selection["crowd_serial_ids"], batch_ids=[])
    stage("empty copy", lambda: copy_registry(app))

    events = stage("events", lambda: build_events(app, args.events, selection))
    figures["events_build"] = events
    figures["consistency"] = check_consistency(engine)
    log(f"consistency: {figures['consistency']}")
    log("latency, the empty and the full scan history side by side ...")
    empty_app = create_app({**cfg, "DATABASE_URL": pg_url(EMPTY_DB)})
    figures["prewarmed_blocks"] = {"empty": prewarm(empty_app), "full": prewarm(app)}
    log(f"prewarmed (blocks): {figures['prewarmed_blocks']}")
    figures["latency"] = measure({EMPTY_LABEL: empty_app, f"{args.events / 1e6:g}M events": app}, {
        "unit code, no history": fresh_serials,
        "unit code, later hot": hot_serials,
        CROWD: crowd_serials,
        "batch code, no history": fresh_batches,
        "batch code, later hot": hot_batches,
    }, args.requests, distinct={"unit code, no history"})
    for name in ("engine", "read_engine"):
        empty_app.extensions[name].dispose()
    figures["export"] = export_pages(app)
    figures["disk"] = disk(engine)
    with app.extensions["session_factory"]() as session:
        authority = app.extensions["keystore"].load("authority")
        check = TransparencyLog(session).verify_all(authority.public_raw)
        figures["log_check"] = {"size": check.size, "ok": check.ok, "problems": list(check.problems)[:5]}
    figures["timings_s"] = {k: round(v, 1) for k, v in timings.items()}
    figures["total_seconds"] = round(time.perf_counter() - t_all, 1)
    engine.dispose()
    if not args.keep:
        drop_database(DB)
        drop_database(EMPTY_DB)
        import shutil

        shutil.rmtree(INSTANCE, ignore_errors=True)
    figures["summary"] = summarize(figures)
    print(markdown(figures))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1, ensure_ascii=False) + "\n")
    return figures


def _check_sizes(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Sizes the build can honour: ``_select`` sets apart EMPTY_SERIALS serials and 2 x HOT_CODES
    more, and EMPTY_BATCHES + HOT_CODES batches without serials; build_serials puts SERIALS_PER_BATCH
    serials in one batch out of ten. Smaller sizes had ended in an IndexError after the build."""
    least_serials = EMPTY_SERIALS + 2 * HOT_CODES
    if args.serials < least_serials:
        parser.error(f"--serials {args.serials:,}: at least {least_serials:,} (the {EMPTY_SERIALS:,} kept without "
                     f"events and the {2 * HOT_CODES} made hot)")
    serial_batches = -(-args.serials // SERIALS_PER_BATCH)
    if serial_batches > args.batches // 10:
        parser.error(f"--serials {args.serials:,} needs --batches {serial_batches * 10:,} or more "
                     f"({SERIALS_PER_BATCH} serials in one batch out of ten)")
    if args.batches - serial_batches < EMPTY_BATCHES + HOT_CODES:
        parser.error(f"--batches {args.batches:,}: at least {EMPTY_BATCHES + HOT_CODES:,} batches without serials "
                     f"are needed (the {EMPTY_BATCHES:,} kept without events and the {HOT_CODES} made hot); "
                     f"{serial_batches:,} hold the serials")
    scanned = args.serials - EMPTY_SERIALS  # each scanned at least once (build_events)
    if int(args.events * SERIAL_SHARE) < scanned:
        parser.error(f"--events {args.events:,}: {SERIAL_SHARE:.0%} of them go to unit codes, at least one to "
                     f"each of the {scanned:,} serials not kept empty: at least {math.ceil(scanned / SERIAL_SHARE):,}")


def _select(serial_ids: list[int], plain_ids: list[int]) -> dict:
    """The codes kept empty and the ranks that become hot: build_events draws the same ones."""
    rng = random.Random(7)
    serials, plain = list(serial_ids), list(plain_ids)
    rng.shuffle(serials)
    rng.shuffle(plain)
    return {"serial_order": serials, "batch_order": plain,
            "empty_serial_ids": serials[:EMPTY_SERIALS], "empty_batch_ids": plain[:EMPTY_BATCHES],
            "hot_serial_ids": serials[EMPTY_SERIALS:EMPTY_SERIALS + HOT_CODES],
            "crowd_serial_ids": serials[EMPTY_SERIALS + HOT_CODES:EMPTY_SERIALS + 2 * HOT_CODES],
            "hot_batch_ids": plain[EMPTY_BATCHES:EMPTY_BATCHES + HOT_CODES]}


EMPTY_LABEL = "empty history (the registry before its events)"


def summarize(f: dict) -> dict:
    """The target: with the events, every class's p99 within 20 % of the same class's p99 on the
    empty history, measured side by side; beside it, each class against codes with no history in
    the same database."""
    empty, full = f["latency"][EMPTY_LABEL], [v for k, v in f["latency"].items() if k != EMPTY_LABEL][0]
    ref = full["unit code, no history"]["p99_ms"]
    vs_empty = {name: full[name]["p99_ms"] / empty[name]["p99_ms"] for name in full}
    return {"reference_p99_ms": ref,
            "p99_ratio_vs_no_history_same_db": {name: full[name]["p99_ms"] / ref for name in full},
            "p99_ratio_vs_empty_history": vs_empty, "worst_ratio_vs_empty_history": max(vs_empty.values()),
            "target_met": max(vs_empty.values()) <= 1.2}


def markdown(f: dict) -> str:
    out = []
    ev = f["events_build"]
    out.append(f"{f['batches']:,} batches, {f['serials']:,} serials, {f['events']:,} scan events "
               f"({ev['serial_events']:,} on unit codes: top serial {ev['top_serial_events']:,}, median "
               f"{ev['serial_median_events']}; {ev['batch_events']:,} on batch codes: top {ev['top_batch_events']:,}). "
               f"Built in {f['total_seconds'] / 60:.1f} min in all ({', '.join(f'{k} {v:.0f} s' for k, v in f['timings_s'].items())}). "
               f"Counters consistent with the events: {f['consistency']}. Transparency log: "
               f"{f['log_check']['size']:,} entries, verify_all {'ok' if f['log_check']['ok'] else f['log_check']['problems']}.\n")
    out.append(f"GET /api/v1/verify in process (Flask test client), sequential: each code verified in the "
               f"database with the events and in the copy of the registry made before them (empty history), one "
               f"right after the other, the order alternating; {f['requests_per_class']:,} requests per class and "
               "database, classes interleaved; each request reads the counters and hands its scan to the batching "
               "scan writer. \"Hot\" = the 20 codes that get the most events.\n")
    out.append("| history | code | history seen (scans) | p50 ms | p99 ms | p99 / same codes, empty history | "
               "p99 / no-history codes, same database | verdicts |")
    out.append("|---|---|---|---|---|---|---|---|")
    empty = f["latency"][EMPTY_LABEL]
    for phase, classes in f["latency"].items():
        ref = classes["unit code, no history"]["p99_ms"]
        for name, r in classes.items():
            verdicts = ", ".join(f"{k} {v}" for k, v in r["verdicts"].items())
            out.append(f"| {phase} | {name} | {r['history_seen']:,} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                       f"{r['p99_ms'] / empty[name]['p99_ms']:.2f} | {r['p99_ms'] / ref:.2f} | {verdicts} |")
    s = f["summary"]
    out.append(f"\nTarget: with {f['events'] / 1e6:g}M events, p99 within 20 % of its value on an empty history "
               f"(every class, side by side): worst ratio {s['worst_ratio_vs_empty_history']:.2f} → "
               f"{'✅ met' if s['target_met'] else '❌ missed'}.\n")
    e = f.get("export")
    if e:
        out.append(f"EPCIS export of the last day's scan events ({e['events_in_window']:,} of the {f['events']:,}), "
                   f"pages of {EXPORT_PAGE:,} events followed by their tokens:\n")
        out.append("| index | pages | events | median ms per page | max ms |")
        out.append("|---|---|---|---|---|")
        for label in ("with the index (at, id)", "without it"):
            r = e[label]
            out.append(f"| {label} | {r['pages']} | {r['events']:,} | {r['median_ms']:,.1f} | {r['max_ms']:,.1f} |")
        out.append("")
    if e and e.get("registrations"):
        out.append(f"EPCIS export of the registrations (commissioning events; the {f['batches']:,} batches share one "
                   f"second), pages of {EXPORT_PAGE:,} from the start and from the middle of the table:\n")
        out.append("| index | pages | events | median ms per page | max ms |")
        out.append("|---|---|---|---|---|")
        for label, r in e["registrations"].items():
            out.append(f"| {label} | {r['pages']} | {r['events']:,} | {r['median_ms']:,.1f} | {r['max_ms']:,.1f} |")
        out.append("")
    d = f["disk"]
    out.append("| table | rows / role | total MB | heap MB | indexes MB |")
    out.append("|---|---|---|---|---|")
    for table in ("scan_events", "serial_clients", "serials", "batches", "log_entries"):
        t = d[table]
        out.append(f"| {table} | {'%s rows' % format(d['scan_events_rows'], ',') if table == 'scan_events' else ''} | "
                   f"{t['total_mb']:,.0f} | {t['heap_mb']:,.0f} | {t['indexes_mb']:,.0f} |")
    out.append(f"\nDisk per million scan events: **{d['scan_events_mb_per_million']:.0f} MB** (scan_events with its "
               f"indexes); database {d['database_mb']:,.0f} MB in all.")
    return "\n".join(out)


if __name__ == "__main__":
    main()
