"""Real codes for every verdict, made through the registry (shared by the page and browser tests)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from keys.signing import sign_code
from registry.rules import yymmdd
from registry.services import SYSTEM, Registry
from verification.digital_link import build_url

from tests.conftest import GTIN, batch_data

VERDICTS = ("genuine", "counterfeit", "suspect", "recalled", "expired", "unknown", "unverifiable", "unreadable")


@dataclass
class Codes:
    by_verdict: dict[str, str]
    genuine_serial: str

    def __getitem__(self, verdict: str) -> str:
        return self.by_verdict[verdict]


def tamper(url: str) -> str:
    """The same code with one character of its signature changed."""
    head, sig = url.rsplit(".", 1)
    i = len(sig) // 2
    return f"{head}.{sig[:i]}{'A' if sig[i] != 'A' else 'B'}{sig[i + 1:]}"


def make_codes(registry: Registry, session, *, producer_id: str, kid: str) -> Codes:
    today = date.today()
    genuine = registry.register_batch(SYSTEM, batch_data(lot="LOT-1"), producer_id=producer_id)
    (serial, s), = registry.issue_serials(SYSTEM, GTIN, "LOT-1", 1)
    genuine_url = registry.serial_url(genuine, serial, s)

    recalled = registry.register_batch(SYSTEM, batch_data(lot="LOT-R"), producer_id=producer_id)
    (r_serial, r_s), = registry.issue_serials(SYSTEM, GTIN, "LOT-R", 1)
    registry.recall(SYSTEM, GTIN, "LOT-R", reason="Nhiễm khuẩn / contamination")
    recalled_url = registry.serial_url(recalled, r_serial, r_s)

    signer = registry.keystore.load(kid)
    past = today - timedelta(days=3)
    expired_batch = registry.register_batch(
        SYSTEM, batch_data(lot="LOT-E", expiry=past, production_date=(today - timedelta(days=400)).isoformat()),
        producer_id=producer_id)
    (e_serial, e_s), = registry.issue_serials(SYSTEM, GTIN, "LOT-E", 1)
    expired_url = registry.serial_url(expired_batch, e_serial, e_s)

    other_exp = yymmdd(today + timedelta(days=30))
    mismatch_s = sign_code(signer, gtin=GTIN, lot="LOT-1", serial=serial, exp=other_exp)
    suspect_url = build_url(registry.base_url, gtin=GTIN, lot="LOT-1", serial=serial, exp=other_exp, s=mismatch_s)

    unknown_s = sign_code(signer, gtin=GTIN, lot="NO-SUCH-LOT", serial="ABC123", exp=None)
    unknown_url = build_url(registry.base_url, gtin=GTIN, lot="NO-SUCH-LOT", serial="ABC123", s=unknown_s)
    session.commit()
    return Codes(by_verdict={
        "genuine": genuine_url, "counterfeit": tamper(genuine_url), "suspect": suspect_url,
        "recalled": recalled_url, "expired": expired_url, "unknown": unknown_url,
        "unverifiable": GTIN, "unreadable": "hello, this is not a product code",
    }, genuine_serial=serial)

