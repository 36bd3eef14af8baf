"""Demo data: a producer with a certified custodial key, a few batches with serials (one recalled,
one with a corrected record), and tokens."""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import select

from registry.accounts import DEMO_TOKEN_LABEL, AccountService, TokenAdmin
from registry.models import ApiToken, Batch, Producer, User
from registry.services import SYSTEM, Registry, Role

__all__ = ["load_demo", "DEMO_TAX_CODE"]

DEMO_TAX_CODE = "0312345673"
DEMO_PREFIX = "893600001"


def _batches(today):
    return [
        {"gtin": "08936000010010", "lot": "CF2026A", "product": {"name": "Cà phê rang xay Buôn Ma Thuột",
                                                                  "brand": "Highland Farm", "category": "Cà phê"},
         "facility": {"name": "Xưởng rang Ea Tu", "address": "Xã Ea Tu, TP Buôn Ma Thuột, Đắk Lắk",
                      "gln": "8936000010003", "country": "VN"},
         "production_date": (today - timedelta(days=30)).isoformat(),
         "expiry_date": (today + timedelta(days=335)).isoformat(), "quantity": 5000,
         "certifications": [{"scheme": "VietGAP", "id": "VG-2026-0147"}]},
        {"gtin": "08936000010027", "lot": "NM2026-07", "product": {"name": "Nước mắm Phú Quốc 40 độ đạm",
                                                                   "brand": "Hải Đăng", "category": "Gia vị"},
         "facility": {"name": "Nhà thùng Hải Đăng", "address": "Dương Đông, Phú Quốc, Kiên Giang",
                      "country": "VN"},
         "production_date": (today - timedelta(days=120)).isoformat(),
         "expiry_date": (today + timedelta(days=600)).isoformat(), "quantity": 12000,
         "certifications": [{"scheme": "PDO", "id": "PQ-FS-0031"}]},
        {"gtin": "08936000010034", "lot": "MO-2025-11", "product": {"name": "Mật ong hoa cà phê",
                                                                    "brand": "Highland Farm", "category": "Mật ong"},
         "facility": {"name": "Trại ong Krông Pắc", "address": "Krông Pắc, Đắk Lắk", "country": "VN"},
         "production_date": (today - timedelta(days=400)).isoformat(),
         "expiry_date": (today - timedelta(days=5)).isoformat(), "quantity": 800},
    ]


def _demo_accounts(registry: Registry, producer: Producer) -> list[str]:
    """One portal account per role, with a fresh password each run (printed once)."""
    accounts = AccountService(registry.session)
    lines = []
    for role in (Role.AUTHORITY, Role.PRODUCER, Role.INSPECTOR, Role.PARTNER):
        username = f"demo-{role.value}"
        password = secrets.token_urlsafe(12)
        user = registry.session.execute(select(User).where(User.username == username)).scalar_one_or_none()
        if user is None:
            accounts.create_user(SYSTEM, username=username, password=password, role=role,
                                 producer_id=producer.id if role == Role.PRODUCER else None,
                                 display_name=f"Demo {role.value}")
        else:
            accounts.change_password(SYSTEM, username, old_password=None, new_password=password)
            accounts.unlock(SYSTEM, username)
        lines.append(f"portal login {username} / {password}")
    return lines


def _demo_status(batch: Batch, today) -> str:
    """What a shopper's scan of the batch answers, as the demo means it: recalled, expired or genuine."""
    if batch.status == "recalled":
        return "recalled"
    return "expired" if batch.expiry_date is not None and batch.expiry_date < today else "genuine"


def _demo_tokens(registry: Registry, producer: Producer) -> list[str]:
    """One token per role, labelled ``demo`` (a label no one but the demo can give a token); the
    previous run's demo tokens are revoked first, so that only the ones printed last stay valid
    (each creation and revocation audited, as the operator's ``token create`` and ``token revoke``)."""
    admin = TokenAdmin(registry.session)
    previous = registry.session.execute(select(ApiToken.id).where(
        ApiToken.label == DEMO_TOKEN_LABEL, ApiToken.revoked_at.is_(None), ApiToken.created_by_token_id.is_(None),
        ApiToken.created_by_user_id.is_(None)).order_by(ApiToken.id)).scalars().all()
    for token_id in previous:
        admin.revoke(SYSTEM, token_id)
    lines = []
    for role in (Role.AUTHORITY, Role.INSPECTOR, Role.PARTNER, Role.PRODUCER):
        token, _ = admin.create(SYSTEM, role=role, producer_id=producer.id if role == Role.PRODUCER else None,
                                label=DEMO_TOKEN_LABEL, days=None, demo=True)
        lines.append(f"{role.value} token: {token}")
    return lines


def load_demo(registry: Registry) -> list[str]:
    """Idempotent: a second run reuses the demo producer and batches, and replaces the demo tokens
    (the previous ones are revoked) and the demo accounts' passwords."""
    session = registry.session
    # (an instance made before tax codes' check digits were checked has the demo producer under 0312345678)
    producer = session.execute(select(Producer).where(Producer.tax_code.in_((DEMO_TAX_CODE, "0312345678")))
                               .order_by(Producer.created_at)).scalars().first()
    if producer is None:
        producer = registry.admit_producer(SYSTEM, name="HTX Nông sản Highland Farm", tax_code=DEMO_TAX_CODE,
                                           gs1_prefixes=[DEMO_PREFIX], country="VN")
        registry.certify_key(SYSTEM, producer.id)
    today = registry.clock().date()
    batches = []
    for data in _batches(today):
        batch = session.execute(select(Batch).where(Batch.gtin == data["gtin"], Batch.lot == data["lot"])
                                ).scalar_one_or_none()
        if batch is None:
            batch = registry.register_batch(SYSTEM, data, producer_id=producer.id)
            registry.issue_serials(SYSTEM, batch.gtin, batch.lot, 5)
        batches.append(batch)
    honey = session.execute(select(Batch).where(Batch.lot == "MO-2025-11")).scalar_one()
    if honey.record.get("version", 1) == 1:  # one corrected record, so that its versions can be seen
        data = next(d for d in _batches(today) if d["lot"] == "MO-2025-11")
        data = {**data, "production_date": honey.record["production_date"], "expiry_date": honey.record["expiry_date"],
                "facility": {**data["facility"], "address": "Thôn 3, xã Ea Kly, huyện Krông Pắc, Đắk Lắk"}}
        registry.correct_batch(SYSTEM, honey.gtin, honey.lot, data,
                               reason="Bổ sung địa chỉ trại ong / farm address completed")
    recalled = session.execute(select(Batch).where(Batch.lot == "NM2026-07")).scalar_one()
    if recalled.status != "recalled":
        registry.recall(SYSTEM, recalled.gtin, recalled.lot, reason="Nhãn ghi sai hạn dùng / wrong expiry on label")
    lines = [f"Demo producer: {producer.name} ({producer.id})"]
    for batch in batches:  # after the recall and the correction: their status as a scan answers it
        lines.append(f"  {batch.product_name} [{_demo_status(batch, today)}]: {registry.batch_url(batch)}")
        serial = next(registry.serials(batch, limit=1), None)
        if serial is not None:
            lines.append(f"    one unit: {registry.serial_url(batch, serial.serial, serial.s)}")
    lines.extend(_demo_tokens(registry, producer))
    lines.extend(_demo_accounts(registry, producer))
    lines.append(f"portal: {registry.base_url.rstrip('/')}/portal/login")
    return lines
