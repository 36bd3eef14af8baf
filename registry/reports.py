"""Shoppers' counterfeit reports: stored with everything an inspector needs, answered with a case number
and a follow-up code.

A report keeps the code as read (and its parsed GTIN, lot and serial), the verdict the registry
gave at the time, where and from whom the product was bought, up to three photos (checked with
the same limits as verification photos, stored with their SHA-256 and media type), an optional
contact, and the salted client hash that lets the service limit floods without knowing who
reported. The follow-up code (ten characters the shopper can write down, like a parcel's tracking
PIN) is given once, at filing, and only its hash is kept: with the case number it shows the
shopper where the report stands (received, investigated, confirmed, closed), never what an
inspector wrote or who else reported. Nothing here imports Flask.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import logging
import math
import re
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Callable, Mapping, Sequence

from PIL import Image, ImageOps
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from keys.encoding import rfc3339, utcnow
from registry.cases import live_publication
from registry.db import as_utc
from registry.errors import Invalid, NotFound, RegistryError
from registry.models import Batch, CaseNote, Report, ReportPhoto
from verification.decoding import DEFAULT_MAX_PIXELS, ImageRejected, load_image
from verification.verdicts import ScanContext, Verifier

__all__ = [
    "WHERE_KINDS",
    "CASE_NUMBER",
    "ReportLimits",
    "ReportInvalid",
    "PhotoTooLarge",
    "TooManyReports",
    "ReportService",
    "ReportInput",
    "FiledReport",
    "FOLLOWUP_STATUS",
    "case_number",
    "normalise_case_number",
    "normalise_followup_code",
]

log = logging.getLogger(__name__)

#: Where the product was bought.
WHERE_KINDS = ("shop", "market", "ecommerce", "social", "livestream", "other")
MiB = 1024 * 1024
#: What ``case_number`` makes.
CASE_NUMBER = re.compile(r"VN-\d{4}-\d{6,}")
_LINK = re.compile(r"^https?://[^\s/$.?#][^\s]*$", re.IGNORECASE)
#: A shop's address as shoppers copy it from an app's share sheet or type it, without its scheme
#: ("shopee.vn/shop/123", "www.facebook.com/groups/x"): a host name with a dot, then a path or nothing.
_HOST_FIRST = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,}(?::\d+)?(?:[/?#]\S*)?$", re.IGNORECASE)


def web_address(text: str) -> str:
    """A link as given, or with ``https://`` before it when it is a web address without its scheme."""
    return "https://" + text if _HOST_FIRST.match(text) else text


#: What a shopper is told of a case's status: not the authority's own steps.
FOLLOWUP_STATUS = {"new": "received", "assigned": "investigating", "investigating": "investigating",
                   "confirmed": "confirmed", "dismissed": "closed"}
# Crockford's base32, as serials (registry.services.SERIAL_ALPHABET): no I, L, O, U to misread.
_FOLLOWUP_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_FOLLOWUP_LENGTH = 10  # 50 random bits, behind a rate limit: not guessable
_READ_AS = str.maketrans({"O": "0", "I": "1", "L": "1"})
#: Longest accepted value of each free-text field (the model's column sizes).
_MAX_LENGTH = {"code": 4096, "where_text": 1000, "seller": 200, "link": 2000, "price": 32, "contact": 200,
               "description": 5000}


@dataclass(frozen=True)
class ReportLimits:
    """Abuse limits. ``per_client_per_hour`` counts reports from one (hashed) client."""

    per_client_per_hour: int = 5
    max_photos: int = 3
    max_photo_bytes: int = 10 * MiB
    max_pixels: int = DEFAULT_MAX_PIXELS


class ReportInvalid(Invalid):
    """One or more fields are wrong. ``errors`` maps each field to a machine code; ``photo_error``
    is the rejection of the first bad photo, if any (the web layer picks 413/415/422 from it)."""

    def __init__(self, errors: Mapping[str, str], *, photo_error: Exception | None = None,
                 details: Mapping[str, str] | None = None) -> None:
        self.errors = dict(errors)
        self.details = dict(details or {})
        self.photo_error = photo_error
        first = next(iter(self.errors.items()))
        message = "; ".join(f"{f}: {self.details.get(f) or c}" for f, c in self.errors.items())
        super().__init__(f"the report is incomplete or invalid ({message})",
                         code=str(photo_error.code) if photo_error is not None else "REPORT_INVALID",
                         field=first[0])


class PhotoTooLarge(Exception):
    """A photo's file is larger than the per-photo limit (the HTTP layer answers 413)."""

    code = "PHOTO_TOO_LARGE"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TooManyReports(RegistryError):
    """One client sent more reports than the limit allows (the HTTP layer answers 429, with
    ``retry_after``: the seconds until its oldest report of the hour stops counting)."""

    code = "TOO_MANY_REPORTS"

    def __init__(self, message: str, *, retry_after: int = 3600, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


@dataclass(frozen=True)
class _Photo:
    data: bytes
    media_type: str
    sha256: str


def without_metadata(data: bytes) -> tuple[bytes, str]:
    """A shopper's photo as it is kept: turned upright, then encoded again from its pixels alone, so
    that nothing the camera wrote beside them is kept or shown to a producer, an inspector or a
    partner agency (EXIF with the GPS position, often the shopper's home, the phone's make and
    serial, XMP, comments, colour profiles: they had been stored and served as uploaded). A JPEG or
    WebP photo becomes a JPEG (quality 90), any other image a PNG (lossless; an animation keeps its
    first frame). Returns (bytes, media type). The caller has checked it is a decodable image."""
    with Image.open(io.BytesIO(data)) as img:
        lossy = img.format in ("JPEG", "WEBP")
        upright = ImageOps.exif_transpose(img)
    # The pixels' own transparency stays; the rest of what was read beside them (exif, icc_profile,
    # xmp, comment, dpi...) is what encoders write back when they find it here.
    upright.info = {k: v for k, v in upright.info.items() if k == "transparency"}
    out = io.BytesIO()
    if lossy:
        upright.convert("RGB").save(out, format="JPEG", quality=90)
        return out.getvalue(), "image/jpeg"
    if upright.mode not in ("1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16"):
        upright = upright.convert("RGBA")  # CMYK, YCbCr, float TIFFs...: PNG keeps none of them
    upright.save(out, format="PNG")
    return out.getvalue(), "image/png"


def new_followup_code() -> str:
    """``7K2QH-9ZD4M``: ten characters in two groups, to read out or write down."""
    code = "".join(secrets.choice(_FOLLOWUP_ALPHABET) for _ in range(_FOLLOWUP_LENGTH))
    return f"{code[:5]}-{code[5:]}"


def normalise_followup_code(text: str) -> str:
    """A follow-up code as typed: spaces, hyphens and case ignored, O read as 0 and I or L as 1."""
    return "".join(c for c in (text or "").upper() if c not in " -\t").translate(_READ_AS)[:64]


def normalise_case_number(text: str) -> str:
    """A case number as typed: case, spaces and hyphens ignored and O read as 0 in its digits
    (``vn2026000123``, ``VN-2026-OOO123`` are ``VN-2026-000123``); anything else as typed."""
    compact = "".join(c for c in (text or "").upper() if c not in " -\t")
    digits = compact[2:].replace("O", "0")
    if compact.startswith("VN") and digits.isdigit() and digits.isascii() and len(digits) >= 10:
        return f"VN-{digits[:4]}-{digits[4:]}"
    return compact


def _followup_hash(case: str, code: str) -> str:
    return hashlib.sha256(f"{case}|{normalise_followup_code(code)}".encode()).hexdigest()


@dataclass(frozen=True)
class FiledReport:
    """A report just stored, with the follow-up code its shopper gets (kept nowhere but here)."""

    report: Report
    followup_code: str


def case_number(report_id: int, year: int) -> str:
    """``VN-2026-000123``: the year it was filed and the report's number."""
    return f"VN-{year}-{report_id:06d}"


@dataclass
class ReportInput:
    """A report as submitted, before checks (every text field is optional at this level)."""

    code: str = ""
    where_kind: str = ""
    where_text: str = ""
    seller: str = ""
    link: str = ""
    price: str = ""
    bought_on: str | date | None = None
    contact: str = ""
    description: str = ""
    photos: Sequence[bytes] = field(default_factory=tuple)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], photos: Sequence[bytes] = ()) -> "ReportInput":
        def text(name: str) -> str:
            value = values.get(name)
            return "" if value is None else str(value).strip()

        bought = values.get("bought_on")
        return cls(code=text("code"), where_kind=text("where_kind"), where_text=text("where_text"),
                   seller=text("seller"), link=web_address(text("link")), price=text("price"),
                   bought_on=bought if isinstance(bought, date) else text("bought_on") or None,
                   contact=text("contact"), description=text("description"), photos=tuple(photos))


class ReportService:
    """Create and read shoppers' reports, inside the caller's transaction."""

    def __init__(self, session: Session, *, clock: Callable[[], datetime] = utcnow,
                 limits: ReportLimits = ReportLimits(), verifier: Verifier | None = None) -> None:
        self.session = session
        self.clock = clock
        self.limits = limits
        self.verifier = verifier

    # -- checks --------------------------------------------------------------------------------
    def _last_hour(self, client_hash: str, now: datetime) -> tuple[int, datetime | None]:
        """How many reports this client filed in the hour before ``now``, and when the first of them."""
        count, oldest = self.session.execute(
            select(func.count(Report.id), func.min(Report.created_at))
            .where(Report.client_hash == client_hash, Report.created_at >= now - timedelta(hours=1))).one()
        return count, as_utc(oldest) if oldest is not None else None

    def check_flood(self, client_hash: str | None) -> None:
        """Refuse past the hourly limit, saying when the oldest of the hour stops counting. On
        PostgreSQL one client's reports take turns until each is committed (a lock on its hash):
        twelve sent at once had all counted the same earlier ones, and ten were stored against a
        limit of five. SQLite's writers take turns anyway."""
        if not client_hash:
            return
        if self.session.get_bind().dialect.name == "postgresql":
            self.session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:client, 0))"),
                                 {"client": "report:" + client_hash})
        now = self.clock()
        count, oldest = self._last_hour(client_hash, now)
        if count >= self.limits.per_client_per_hour:
            wait = (oldest + timedelta(hours=1) - now).total_seconds() if oldest is not None else 3600
            raise TooManyReports(f"at most {self.limits.per_client_per_hour} reports an hour from one device; "
                                 "please try again later", code="TOO_MANY_REPORTS",
                                 retry_after=max(1, math.ceil(wait)))

    def _check_fields(self, data: ReportInput) -> tuple[dict[str, str], dict[str, str], date | None]:
        errors: dict[str, str] = {}
        details: dict[str, str] = {}
        for name, limit in _MAX_LENGTH.items():
            if len(getattr(data, name)) > limit:
                errors[name] = "TOO_LONG"
                details[name] = f"at most {limit} characters"
        if data.where_kind not in WHERE_KINDS:
            errors["where_kind"] = "FIELD_REQUIRED" if not data.where_kind else "BAD_CHOICE"
            details["where_kind"] = f"one of {', '.join(WHERE_KINDS)}"
        if not data.where_text and not data.link:
            errors.setdefault("where_text", "FIELD_REQUIRED")
            details["where_text"] = "the shop or market address, or the platform, page or channel name"
        if data.link and not _LINK.match(data.link):
            errors.setdefault("link", "BAD_LINK")
            details["link"] = "a web address: http:// or https://, or a host name and path (shopee.vn/shop/1)"
        if not data.code and not data.photos:
            errors["code"] = "CODE_OR_PHOTO"
            details["code"] = "the code on the product, or at least one photo of it"
        bought: date | None = None
        if isinstance(data.bought_on, date):
            bought = data.bought_on
        elif data.bought_on:
            try:
                bought = date.fromisoformat(str(data.bought_on))
            except ValueError:
                errors["bought_on"] = "BAD_DATE"
                details["bought_on"] = "a date YYYY-MM-DD"
        if bought is not None and bought > self.clock().date() + timedelta(days=1):
            errors["bought_on"] = "DATE_IN_FUTURE"
            details["bought_on"] = "the date cannot be in the future"
        if len(data.photos) > self.limits.max_photos:
            errors["photo"] = "TOO_MANY_PHOTOS"
            details["photo"] = f"at most {self.limits.max_photos} photos"
        return errors, details, bought

    def check_photo(self, data: bytes) -> _Photo:
        """Raise :class:`PhotoTooLarge` or ``ImageRejected`` (415/422) as verification photos do."""
        if len(data) > self.limits.max_photo_bytes:
            raise PhotoTooLarge(f"a photo is larger than {self.limits.max_photo_bytes // MiB} MiB")
        load_image(data, max_pixels=self.limits.max_pixels)  # magic bytes, pixel count, full decode
        data, media_type = without_metadata(data)
        return _Photo(data=data, media_type=media_type, sha256=hashlib.sha256(data).hexdigest())

    # -- writing -------------------------------------------------------------------------------
    def create(self, data: ReportInput, *, client_hash: str | None) -> FiledReport:
        """Check the flood limit, the fields and every photo; store the report; return it (with its
        ``case_number``) and its follow-up code. Raises :class:`TooManyReports` or
        :class:`ReportInvalid`."""
        self.check_flood(client_hash)
        errors, details, bought = self._check_fields(data)
        photos: list[_Photo] = []
        photo_error: Exception | None = None
        if "photo" not in errors:
            for index, raw in enumerate(data.photos, start=1):
                try:
                    photos.append(self.check_photo(raw))
                except (ImageRejected, PhotoTooLarge) as exc:
                    photo_error = exc
                    errors["photo"] = exc.code if isinstance(exc, PhotoTooLarge) else exc.code.value
                    details["photo"] = f"photo {index}: {exc.message}"
                    break
        if errors:
            raise ReportInvalid(errors, photo_error=photo_error, details=details)

        verification = None
        if data.code and self.verifier is not None:
            verification = self.verifier.verify_text(data.code, context=ScanContext(channel="report",
                                                                                    client=client_hash))
        code = verification.code if verification else None
        now = self.clock()
        report = Report(
            case_number=f"pending-{secrets.token_hex(8)}",
            code=data.code,
            gtin=code.gtin if code else None,
            lot=code.lot if code else None,
            serial=code.serial if code else None,
            producer_id=self._producer_of(verification),
            verdict=verification.verdict.value if verification else None,
            where_kind=data.where_kind, where_text=data.where_text, seller=data.seller, link=data.link,
            price=data.price, bought_on=bought, contact=data.contact, description=data.description,
            client_hash=client_hash, status="new", created_at=now,
        )
        self.session.add(report)
        self.session.flush()
        report.case_number = case_number(report.id, now.year)
        followup = new_followup_code()
        report.followup_hash = _followup_hash(report.case_number, followup)
        for photo in photos:
            self.session.add(ReportPhoto(report_id=report.id, media_type=photo.media_type, sha256=photo.sha256,
                                         data=photo.data))
        self.session.flush()
        log.info("report %s filed (verdict %s, %d photo(s))", report.case_number, report.verdict, len(photos))
        return FiledReport(report, followup)

    def _producer_of(self, verification) -> str | None:  # noqa: ANN001 - a Verification or None
        """Whose product the report is about: the batch's producer, or for a code naming no batch
        the registry holds (a plain barcode, a lot nobody registered: often the fake itself) the
        producer of the GTIN's latest batch, who should hear of it too."""
        if verification is None:
            return None
        if verification.batch is not None:
            return verification.batch.producer_id
        gtin = verification.code.gtin if verification.code else None
        if gtin is None:
            return None
        return self.session.execute(select(Batch.producer_id).where(Batch.gtin == gtin)
                                    .order_by(Batch.id.desc()).limit(1)).scalar_one_or_none()

    # -- reading -------------------------------------------------------------------------------
    def get(self, case: str) -> Report:
        report = self.session.execute(select(Report).where(Report.case_number == case)).scalar_one_or_none()
        if report is None:
            raise NotFound(f"no report {case}", code="REPORT_UNKNOWN")
        return report

    def followup(self, case: str, code: str) -> dict[str, Any]:
        """Where the report stands, for the shopper who holds its case number and follow-up code:
        the status in the shopper's terms (``FOLLOWUP_STATUS``), when it was received and last
        changed status, and whether it is among the published violators. A wrong code, an unknown
        case and a report filed before follow-up codes all answer the same ``REPORT_UNKNOWN``."""
        unknown = NotFound("no report has this case number and follow-up code", code="REPORT_UNKNOWN")
        case = normalise_case_number(case)
        if not CASE_NUMBER.fullmatch(case) or not normalise_followup_code(code):
            raise unknown
        report = self.session.execute(select(Report).where(Report.case_number == case)).scalar_one_or_none()
        if report is None or not report.followup_hash or not hmac.compare_digest(report.followup_hash,
                                                                                  _followup_hash(case, code)):
            raise unknown
        changed = self.session.execute(
            select(func.max(CaseNote.at)).where(CaseNote.report_id == report.id, CaseNote.status_to.is_not(None))
        ).scalar_one()
        published = live_publication(self.session, report.id) is not None
        return {"case_number": report.case_number, "status": FOLLOWUP_STATUS.get(report.status, "investigating"),
                "received_at": rfc3339(report.created_at),
                "updated_at": rfc3339(changed or report.created_at), "published": published}

    @staticmethod
    def view(report: Report) -> dict[str, Any]:
        """The report as an inspector reads it (photos by hash and type, not their bytes)."""
        return {
            "case_number": report.case_number, "status": report.status, "code": report.code,
            "gtin": report.gtin, "lot": report.lot, "serial": report.serial, "producer_id": report.producer_id,
            "verdict": report.verdict, "where": {"kind": report.where_kind, "text": report.where_text},
            "seller": report.seller, "link": report.link, "price": report.price,
            "bought_on": report.bought_on.isoformat() if report.bought_on else None,
            "description": report.description, "created_at": report.created_at,
            "photos": [{"sha256": p.sha256, "media_type": p.media_type, "size": len(p.data)} for p in report.photos],
        }
