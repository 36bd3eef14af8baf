"""Screenshots of the main portal pages at a phone (390x844) and a desktop (1280x800) viewport, into
tests/artifacts/screenshots/portal-*.png; no page may scroll sideways on the phone."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from registry.models import Report
from registry.services import SYSTEM

from tests.app.browser import DESKTOP, PHONE, SCREENSHOTS, launch, playwright  # noqa: F401 (fixture)
from tests.app.portal_support import make_user, page_login
from tests.conftest import GTIN, batch_data

PRODUCER_PAGES = {
    "batches": "/portal/producer/",
    "batch": f"/portal/producer/batches/{GTIN}/LOT-1",
    "new-batch": "/portal/producer/batches/new",
    "correct-batch": f"/portal/producer/batches/{GTIN}/LOT-1/correct",
    "import": "/portal/producer/import",
    "keys": "/portal/producer/keys",
    "tokens": "/portal/producer/tokens",
    "reports": "/portal/producer/reports",
}
AUTHORITY_PAGES = {
    "producers": "/portal/authority/",
    "authority-keys": "/portal/authority/keys",
    "publications": "/portal/authority/publications",
    "users": "/portal/authority/users",
    "audit": "/portal/authority/audit",
    "exports": "/portal/partner/",
}


@pytest.fixture
def filled(world, registry, session):
    make_user(session, "producer1", "producer", world.producer_id)
    make_user(session, "boss", "authority")
    registry.register_batch(SYSTEM, batch_data(), producer_id=world.producer_id)
    registry.register_batch(SYSTEM, batch_data(lot="LOT-2"), producer_id=world.producer_id)
    registry.issue_serials(SYSTEM, GTIN, "LOT-1", 4)
    fix = {**batch_data(), "quantity": 96}
    registry.correct_batch(SYSTEM, GTIN, "LOT-1", fix, reason="Đếm lại: 4 gói hỏng trước khi dán nhãn")
    registry.recall(SYSTEM, GTIN, "LOT-2", reason="Nhiễm ẩm")
    session.add(Report(case_number="VN-2026-000007", code=f"https://verify.example.vn/01/{GTIN}/10/LOT-1", gtin=GTIN,
                       lot="LOT-1", producer_id=world.producer_id, verdict="counterfeit", where_kind="ecommerce",
                       where_text="Sàn thương mại điện tử", seller="Shop Cà phê Giá Rẻ 247",
                       link="https://shop.example/ca-phe-rang-xay-highland-500g-gia-re", price="89.000 đ",
                       description="Bao bì in mờ, tem bị bóc, mã QR không quét được", status="investigating",
                       created_at=datetime.now(timezone.utc)))
    session.commit()
    session.close()
    return world


def _shoot(page, base: str, name: str, path: str, size: str) -> None:
    page.goto(base + path)
    assert page.locator("main h1").count() >= 1, name
    if size == "phone":
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], f"{name} scrolls sideways"
    page.screenshot(path=str(SCREENSHOTS / f"portal-{name}-{size}.png"), full_page=True)


@pytest.mark.parametrize("size", ["phone", "desktop"])
def test_screenshots_of_the_portal_pages(playwright, live_server, filled, size):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser = launch(playwright)
    try:
        options = ({"viewport": PHONE, "is_mobile": True, "has_touch": True, "device_scale_factor": 2}
                   if size == "phone" else {"viewport": DESKTOP})
        page = browser.new_context(locale="vi-VN", **options).new_page()
        _shoot(page, live_server, "login", "/portal/login", size)
        page_login(page, live_server, "producer1")
        for name, path in PRODUCER_PAGES.items():
            _shoot(page, live_server, name, path, size)
        page.goto(live_server + "/portal/producer/batches/new")
        page.fill("#f-gtin", "123")
        page.click("#batch-form button[type=submit]")
        page.wait_for_load_state()  # the answer's stylesheets too: a click waits only for the navigation
        page.screenshot(path=str(SCREENSHOTS / f"portal-new-batch-error-{size}.png"), full_page=True)
        page.goto(live_server + "/portal/producer/import")
        bad_csv = ("gtin,lot,product_name,facility_name,production_date,expiry_date\r\n"
                   f"{GTIN},NEW-1,Cà phê,Xưởng Ea Tu,2026-01-05,2027-01-05\r\n"
                   f"{GTIN},NEW-2,Hạt tiêu,Xưởng Ea Tu,2026-01-05,2025-01-05\r\n"
                   f"{GTIN},LOT-1,Hạt điều,Xưởng Ea Tu,2026-01-05,\r\n").encode()
        page.set_input_files("#file", files=[{"name": "b.csv", "mimeType": "text/csv", "buffer": bad_csv}])
        page.click("#upload-form button[type=submit]")
        page.wait_for_load_state()  # measured before its stylesheet applied, the table was 530 px wide
        assert page.locator("#preview").get_attribute("data-bad") == "2"
        assert page.evaluate("document.documentElement.scrollWidth") <= (PHONE if size == "phone" else DESKTOP)["width"]
        page.screenshot(path=str(SCREENSHOTS / f"portal-import-preview-{size}.png"), full_page=True)
        page_login(page, live_server, "boss")
        for name, path in AUTHORITY_PAGES.items():
            _shoot(page, live_server, name, path, size)
        page.goto(live_server + "/portal/producer/")  # the authority has no producer here: the 404 page
        _shoot(page, live_server, "forbidden", "/portal/producer/tokens?producer=prd-nobody", size)
    finally:
        browser.close()
