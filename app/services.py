"""Per-request wiring: one database session on ``g``, and the domain services built over it."""

from __future__ import annotations

import functools
import hashlib
from datetime import datetime
from typing import Any

from flask import current_app, g, has_request_context, request
from sqlalchemy.orm import Session

from keys.storage import KeyStore
from registry.accounts import AccountService, TokenAdmin
from registry.audit import AuditTrail
from registry.cases import CaseService
from registry.db import Reader
from registry.exports import ExportService
from registry.inspections import InspectionService
from registry.lookup import RegistryLookup, RegistryLookupAsOf
from registry.publications import PublicationService
from registry.reports import ReportLimits, ReportService
from registry.scans import ScanHistory, network_of
from registry.services import Registry, TokenService
from verification.localtime import vietnam_date
from verification.verdicts import CloneThresholds, ScanContext, Verifier

from app.presenters import verification_json

__all__ = ["db_session", "registry", "tokens", "keystore", "close_session", "verification_reader", "verifier",
           "scan_context", "report_service", "publication_service", "account_service", "token_admin", "export_service"]


def db_session() -> Session:
    if "db" not in g:
        g.db = current_app.extensions["session_factory"]()
    return g.db


def close_session(_exc: BaseException | None = None) -> None:
    g.pop("reader", None)  # holds nothing: its thread keeps the connection (registry.db.ReadConnections)
    opened = g.pop("db", None)
    if opened is not None:
        opened.close()


def keystore() -> KeyStore:
    return current_app.extensions["keystore"]


def registry() -> Registry:
    return Registry(db_session(), keystore=keystore(), base_url=current_app.config["BASE_URL"])


def tokens() -> TokenService:
    return TokenService(db_session())


def verification_reader() -> Reader | Session:
    """This request only verifies: it reads through a ``Reader`` (no Session, no transaction) and
    its scan events go through the scan writer. A request that already has a session verifies
    inside it."""
    if "db" in g:
        return g.db
    if "reader" not in g:
        g.reader = Reader(current_app.extensions["read_connections"])
    return g.reader


def verifier(*, recording: bool = True) -> Verifier:
    """A verifier over the registry, through this request's reader or else its session.
    ``recording=False``: a verdict shown again (the page's language switched): the scan history is
    read, not added to. A HEAD request never adds to it either: link checkers and previews send
    them, not shoppers, and HEAD is a safe method."""
    recording = recording and not (has_request_context() and request.method == "HEAD")  # the CLI has none
    source = g.get("reader") or db_session()
    cfg, extensions = current_app.config, current_app.extensions
    lookup = RegistryLookup(source, cache=extensions["lookup_cache"])
    scans = ScanHistory(source, extensions["scan_writer"], lookup=lookup, network_cache=extensions["network_cache"],
                        recording=recording)
    return Verifier(lookup=lookup, scans=scans,
                    thresholds=CloneThresholds(max_distinct_clients=cfg["CLONE_MAX_CLIENTS"],
                                               max_speed_kmh=cfg["CLONE_MAX_SPEED_KMH"],
                                               max_networks=cfg["CLONE_MAX_NETWORKS"]),
                    home_hosts=cfg["CODE_HOSTS"])


@functools.lru_cache(maxsize=4096)
def _network_hash(salt: str, address: str | None) -> str | None:
    """The salted hash of the network ``address`` belongs to (``registry.scans.network_of``)."""
    network = network_of(address)
    return hashlib.sha256(f"{salt}|net|{network}".encode()).hexdigest()[:32] if network is not None else None


def scan_context(channel: str, values, *, device: str | None = None) -> ScanContext:
    """Build the scan context from request values: salted hashes of the client and of its
    address's network, and a coarse place. The client is the values' ``client_id``, else
    ``device`` (the pages' id of this browser: ``app.pages.device``), else the address and
    User-Agent."""
    client_id = (values.get("client_id") or device or "").strip()[:128]
    basis = client_id or f"{request.remote_addr}|{request.headers.get('User-Agent', '')}"
    salt = current_app.config["SCAN_SALT"]
    client = hashlib.sha256(f"{salt}|{basis}".encode()).hexdigest()[:32]
    network = _network_hash(salt, request.remote_addr)
    lat = lon = None
    try:
        if values.get("lat") not in (None, "") and values.get("lon") not in (None, ""):
            lat, lon = float(values["lat"]), float(values["lon"])
            if not (-90 <= lat <= 90 and -180 <= lon <= 180):
                lat = lon = None
            else:  # about 11 km: enough for clone detection, too coarse to follow a person
                lat, lon = round(lat, 1), round(lon, 1)
    except (TypeError, ValueError):
        lat = lon = None
    return ScanContext(channel=channel, client=client, lat=lat, lon=lon, network=network)


def report_service() -> ReportService:
    """Shoppers' reports, with the per-client limit and the photo limits of verification."""

    cfg = current_app.config
    limits = ReportLimits(per_client_per_hour=cfg["REPORTS_PER_CLIENT_PER_HOUR"],
                          max_photo_bytes=cfg["MAX_CONTENT_LENGTH"], max_pixels=cfg["MAX_IMAGE_PIXELS"])
    return ReportService(db_session(), limits=limits, verifier=verifier())


def publication_service(*, signing: bool = False) -> PublicationService:
    """Reading needs no key; publishing and withdrawing sign with the authority key."""
    return PublicationService(db_session(), authority=registry().authority if signing else None)


def account_service() -> AccountService:
    """Portal accounts (argon2 passwords, lock-out after repeated failures)."""
    return AccountService(db_session())


def audit_trail() -> AuditTrail:
    """The audit trail, as the authority reads it."""
    return AuditTrail(db_session())


def token_admin() -> TokenAdmin:
    """API tokens created and revoked by people (portal and API)."""
    return TokenAdmin(db_session())


def export_service() -> ExportService:
    """Read-only exports (CSV, EPCIS) and the portals' listings."""
    return ExportService(db_session(), base_url=current_app.config["BASE_URL"])


def inspection_service(*, signing: bool = False) -> InspectionService:
    """Inspections; exporting the signed evidence file needs the authority key."""
    return InspectionService(db_session(), authority=registry().authority if signing else None,
                             max_photo_bytes=current_app.config["MAX_CONTENT_LENGTH"])


def case_service() -> CaseService:
    """Shoppers' reports worked as cases."""
    return CaseService(db_session())


def recheck_offline(code: str, at: datetime) -> dict[str, Any]:
    """Verify again a check a browser made offline, without adding to the scan history: its time
    is past, and a late sync must not look like travel between places. It is judged as of ``at``:
    expiry on that moment's date in Vietnam, and a recall made after it left out (the goods were
    not recalled when they were checked)."""
    result = Verifier(lookup=RegistryLookupAsOf(db_session(), moment=at), today=lambda: vietnam_date(at),
                      home_hosts=current_app.config["CODE_HOSTS"]).verify_text(
        code, context=ScanContext(channel="inspection", at=at))
    return verification_json(result)
