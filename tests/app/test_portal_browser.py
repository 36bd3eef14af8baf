"""The producer's and the authority's main paths in a real Chromium (Debian's), at a desktop viewport.

A producer logs in, registers a batch by form (after a field error), imports a CSV with one bad row
(nothing is written and the row's error is shown), fixes it and imports, issues serials and
downloads a PDF sheet whose QR codes decode to valid signed URLs. The authority then revokes the key
and the codes turn ``suspect``. Never skips: without Chromium it fails and says what to install.
"""

from __future__ import annotations

import io
import re
import subprocess
from datetime import date, timedelta

import pytest
import zxingcpp
from PIL import Image

from registry.models import Batch, ProducerKey

from tests.app.browser import desktop, launch, playwright  # noqa: F401 (fixture)
from tests.app.outside_client import check_code_url
from tests.app.portal_support import PASSWORD, make_user, page_login

GTIN = "08936000010010"
GTIN2 = "08936000010027"  # valid check digits, inside the certified prefix 893600001
BAD_GTIN = "08936000010011"  # wrong check digit


@pytest.fixture
def portal_world(world, session):
    make_user(session, "producer1", "producer", world.producer_id)
    make_user(session, "boss", "authority")
    session.close()  # release SQLite: the live server writes from its own thread
    return world


def _count_batches(app) -> int:
    session = app.extensions["session_factory"]()
    try:
        return session.query(Batch).count()
    finally:
        session.rollback()
        session.close()


def _csv(rows: list[tuple]) -> bytes:
    header = ("gtin,lot,product_name,brand,category,facility_name,facility_address,facility_gln,facility_country,"
              "production_date,expiry_date,quantity,certification_scheme,certification_id")
    lines = [header] + [",".join(str(c) for c in row) for row in rows]
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def _rows(*, bad: bool) -> list[tuple]:
    made = (date.today() - timedelta(days=5)).isoformat()
    good_until = (date.today() + timedelta(days=300)).isoformat()
    broken_until = (date.today() - timedelta(days=30)).isoformat()  # before the production date
    return [
        (GTIN, "CSV-1", "Cà phê hạt", "Highland", "Coffee", "Xưởng Ea Tu", "Đắk Lắk", "", "VN", made, good_until,
         "1.200", "VietGAP", "VG-1"),
        (GTIN2, "CSV-2", "Hạt tiêu đen", "Highland", "Spice", "Xưởng Ea Tu", "Đắk Lắk", "", "VN", made,
         broken_until if bad else good_until, "300", "", ""),
        (GTIN2, "CSV-3", "Hạt điều", "Highland", "Nuts", "Xưởng Ea Tu", "Bình Phước", "", "VN", made, good_until,
         "", "", ""),
    ]


def _decode_pdf(pdf: bytes, tmp_path) -> list[str]:
    path = tmp_path / "labels.pdf"
    path.write_bytes(pdf)
    subprocess.run(["pdftoppm", "-r", "200", "-png", str(path), str(tmp_path / "page")], check=True, timeout=120)
    texts: list[str] = []
    for png in sorted(tmp_path.glob("page*.png")):
        image = Image.open(png).convert("L")
        texts += [r.text for r in zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)]
    return texts


def test_producer_main_path_and_authority_revocation(playwright, live_server, app, client, portal_world, tmp_path):
    browser = launch(playwright)
    try:
        page = desktop(browser, locale="en-US").new_page()
        page.on("dialog", lambda dialog: dialog.accept())

        # -- log in ---------------------------------------------------------------------------------
        page_login(page, live_server, "producer1")
        assert page.url.endswith("/portal/producer/")
        assert page.locator(".empty").is_visible()

        # -- register by form: a field error first, then the batch ----------------------------------
        page.click('.portal-nav a[href="/portal/producer/batches/new"]')
        page.fill("#f-gtin", BAD_GTIN)
        page.fill("#f-lot", "FORM-1")
        page.fill("#f-product-name", "Cà phê rang xay")
        page.fill("#f-facility-name", "Xưởng Ea Tu")
        page.fill("#f-production_date", (date.today() - timedelta(days=3)).isoformat())
        page.fill("#f-expiry_date", (date.today() + timedelta(days=365)).isoformat())
        page.fill("#f-quantity", "500")
        page.click("#batch-form button[type=submit]")
        error = page.locator("#f-gtin-error")
        assert error.is_visible() and "check digit" in error.inner_text()
        assert page.get_attribute("#f-gtin", "aria-invalid") == "true"
        assert page.input_value("#f-product-name") == "Cà phê rang xay"  # what was typed is kept
        assert _count_batches(app) == 0
        page.fill("#f-gtin", GTIN)
        page.click("#batch-form button[type=submit]")
        page.wait_for_url(re.compile(r"/portal/producer/batches/08936000010010/FORM-1$"))
        assert "FORM-1" in page.inner_text(".ok-notice")
        assert _count_batches(app) == 1

        # -- correct the record: the form starts from it; a new version, the old one listed ----------
        page.click("#correct-link")
        assert page.input_value("#f-product-name") == "Cà phê rang xay"
        assert page.get_attribute("#f-expiry_date", "readonly") is not None
        page.fill("#f-product-name", "Cà phê hạt Arabica")
        page.click("#correct-form button[type=submit]")
        assert page.locator("#f-reason-error").is_visible()  # a correction needs its reason
        assert page.input_value("#f-product-name") == "Cà phê hạt Arabica"  # what was typed is kept
        page.fill("#f-reason", "Wrong bean on the first label")
        page.click("#correct-form button[type=submit]")
        page.wait_for_url(re.compile(r"/portal/producer/batches/08936000010010/FORM-1#record$"))
        assert "version 2" in page.inner_text(".ok-notice")
        assert page.inner_text("main h1").startswith("Cà phê hạt Arabica")
        assert page.locator("#versions + .table-wrap tbody tr").count() == 2
        assert _count_batches(app) == 1

        # -- CSV: the template, a file with one bad row (nothing written), then the fixed file -------
        page.click('.portal-nav a[href="/portal/producer/import"]')
        with page.expect_download() as download:
            page.click("#template-link")
        template = open(download.value.path(), encoding="utf-8-sig").read()
        assert template.startswith("gtin,lot,product_name")
        page.set_input_files("#file", files=[{"name": "batches.csv", "mimeType": "text/csv",
                                              "buffer": _csv(_rows(bad=True))}])
        page.click("#upload-form button[type=submit]")
        preview = page.locator("#preview")
        assert preview.get_attribute("data-bad") == "1" and preview.get_attribute("data-rows") == "3"
        bad_row = page.locator('tr[data-line="3"]')
        assert "row-error" in bad_row.get_attribute("class")
        assert "expiry_date" in bad_row.inner_text()
        assert page.locator('tr[data-line="2"] .badge-active').is_visible()  # the good rows say OK
        assert page.locator("#import-button").count() == 0  # no import while a row is wrong
        assert _count_batches(app) == 1  # the preview wrote nothing
        page.set_input_files("#file", files=[{"name": "batches.csv", "mimeType": "text/csv",
                                              "buffer": _csv(_rows(bad=False))}])
        page.click("#upload-form button[type=submit]")
        assert page.locator("#preview").get_attribute("data-bad") == "0"
        assert _count_batches(app) == 1
        page.click("#import-button")
        page.wait_for_url(re.compile(r"/portal/producer/$"))
        assert "3" in page.inner_text(".ok-notice")
        assert _count_batches(app) == 4
        assert page.locator("#batches tbody tr").count() == 4

        # -- serials and the PDF sheet ------------------------------------------------------------
        page.click('#batches a:has-text("Hạt tiêu đen")')
        page.fill("#count", "6")
        page.click("#serials-form button[type=submit]")
        page.wait_for_selector("#serials table")
        assert page.locator("#serials tbody tr").count() == 6
        page.select_option("#stock", "a4-21")
        with page.expect_download() as download:
            page.click("#download-pdf")
        assert download.value.suggested_filename.endswith(".pdf")
        pdf = open(download.value.path(), "rb").read()
        assert pdf.startswith(b"%PDF")
        with page.expect_download() as download:
            page.click('#serials tbody tr:first-child a:has-text("PNG")')
        png = Image.open(io.BytesIO(open(download.value.path(), "rb").read()))
        assert zxingcpp.read_barcodes(png)[0].text.startswith(app.config["BASE_URL"] + "/01/" + GTIN2)
    finally:
        browser.close()

    urls = _decode_pdf(pdf, tmp_path)
    assert len(urls) == 6 and len(set(urls)) == 6
    session = app.extensions["session_factory"]()
    public_key = session.get(ProducerKey, portal_world.kid).public_key
    session.close()
    for url in urls:
        payload = check_code_url(url, public_key)  # raises if the signature does not verify
        assert payload["t"] == "unit" and payload["gtin"] == GTIN2 and payload["lot"] == "CSV-2"
    before = client.get("/api/v1/verify", query_string={"code": urls[0]}).get_json()
    assert before["verdict"] == "genuine"

    # -- the authority revokes the key: the codes under it turn suspect ---------------------------
    browser = launch(playwright)
    try:
        page = desktop(browser, locale="en-US").new_page()
        page.on("dialog", lambda dialog: dialog.accept())
        page_login(page, live_server, "boss")
        assert page.url.endswith("/portal/authority/")
        page.click('.portal-nav a[href="/portal/authority/keys"]')
        row = page.locator(f'tr[data-kid="{portal_world.kid}"]')
        assert row.get_attribute("data-status") == "active"
        row.locator("button[type=submit]").click()
        page.wait_for_selector(f'tr[data-kid="{portal_world.kid}"][data-status="revoked"]')
        assert portal_world.kid in page.inner_text(".ok-notice")
    finally:
        browser.close()
    for url in urls:
        answer = client.get("/api/v1/verify", query_string={"code": url}).get_json()
        assert answer["verdict"] == "suspect"
        assert "KEY_REVOKED" in [r["code"] for r in answer["reasons"]]


def test_authority_reads_the_audit_trail_by_filter_and_link(playwright, live_server, portal_world):
    """On a phone: the menu leads to the trail; choosing an action in the form lists only those
    events; a name in the list filters by who acted; the filters' link shows everything again."""
    from tests.app.browser import phone

    browser = launch(playwright)
    try:
        page = phone(browser).new_page()
        page_login(page, live_server, "boss")
        page.click("nav.portal-nav >> text=Nhật ký hoạt động")
        page.wait_for_load_state()
        assert page.locator("main h1").inner_text() == "Nhật ký hoạt động"
        assert page.locator("#audit-events tr[data-action='user.login']").count() == 1  # this login
        page.select_option("#f-action", "user.create")
        page.click("#audit-filter button[type=submit]")
        page.wait_for_load_state()
        actions = page.locator("#audit-events tr[data-event]").evaluate_all("rows => rows.map(r => r.dataset.action)")
        assert actions == ["user.create", "user.create"] and "action=user.create" in page.url
        assert page.locator("#audit-events td[data-label='Thao tác']").first.inner_text() == "Tạo tài khoản"
        page.click("#audit-events td[data-label='Đối tượng'] >> text=user:boss")  # all that was done to it
        page.wait_for_load_state()
        actions = page.locator("#audit-events tr[data-event]").evaluate_all("rows => rows.map(r => r.dataset.action)")
        assert actions == ["user.login", "user.create"] and "target=user" in page.url
        page.click("#audit-events tr[data-action='user.create'] td[data-label='Người thực hiện'] a")  # who created it
        page.wait_for_load_state()
        who = page.locator("#audit-events td[data-label='Người thực hiện']").all_inner_texts()
        assert "actor=system" in page.url and len(who) >= 3 and set(who) == {"system"}
        page.click("#audit-filter >> text=Xem tất cả")
        page.wait_for_load_state()
        assert "?" not in page.url and page.locator("#audit-events tr[data-event]").count() >= 3
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
    finally:
        browser.close()


def test_a_form_clicked_twice_is_sent_once(playwright, live_server, app, portal_world, registry, session):  # noqa: F811
    """A second click while the first post is on its way: 20,000 serials had been issued twice (signed
    for good), two API tokens made, a CSV file imported twice (the second answer saying nothing was)."""
    from registry.models import Serial
    from registry.services import Actor, Role
    from tests.conftest import batch_data

    registry.register_batch(Actor(role=Role.PRODUCER, producer_id=portal_world.producer_id), batch_data())
    session.commit()
    before = session.query(Serial).count()
    session.close()
    browser = launch(playwright)
    try:
        page = desktop(browser).new_page()
        page_login(page, live_server, "producer1")
        page.goto(live_server + f"/portal/producer/batches/{GTIN}/LOT-1")
        posts = []  # said when it fails
        page.on("request", lambda r: posts.append(r.post_data) if r.method == "POST" else None)
        page.fill("#count", "20000")
        # the second click 100 ms after the first, while its post is on its way (the page's own clicks:
        # Playwright's would wait for the navigation the first one started)
        page.evaluate("""() => { const button = document.querySelector('#serials-form button[type=submit]');
                                 button.click(); setTimeout(() => button.click(), 100); }""")
        page.wait_for_selector("#serials table", timeout=30_000)
        page.wait_for_load_state("networkidle")
    finally:
        browser.close()
    check = app.extensions["session_factory"]()
    try:
        assert check.query(Serial).count() - before == 20000, posts
    finally:
        check.close()


def test_a_batch_form_sent_after_the_session_expired_comes_back_filled_after_the_login(
        playwright, live_server, app, portal_world):  # noqa: F811
    """The producer filled the batch form slowly; the session expired meanwhile (the browser's cookie
    gone): sending it had met the public error page, everything typed lost. Now the login comes
    first, then the form again as it was sent, to send again."""
    browser = launch(playwright)
    try:
        context = desktop(browser)
        page = context.new_page()
        page_login(page, live_server, "producer1")
        page.goto(live_server + "/portal/producer/batches/new")
        page.fill("#f-gtin", GTIN)
        page.fill("#f-lot", "SLOW-1")
        page.fill("#f-product-name", "Trà Shan tuyết cổ thụ")
        page.fill("#f-facility-name", "HTX Suối Giàng")
        page.fill("#f-production_date", (date.today() - timedelta(days=3)).isoformat())
        page.select_option("#f-facility-country", "LA")  # not the form's Viet Nam
        context.clear_cookies()  # the session is over
        page.click("#batch-form button[type=submit]")
        page.wait_for_selector("#login-form")
        page.fill("#username", "producer1")
        page.fill("#password", PASSWORD)
        page.click("#login-form button[type=submit]")
        page.wait_for_function("document.getElementById('f-product-name') && "
                               "document.getElementById('f-product-name').value !== ''")
        assert page.url == live_server + "/portal/producer/batches/new"
        assert (page.input_value("#f-lot"), page.input_value("#f-product-name"), page.input_value("#f-facility-name")) \
            == ("SLOW-1", "Trà Shan tuyết cổ thụ", "HTX Suối Giàng")
        assert page.input_value("#f-facility-country") == "LA"  # a choice too, over the form's default
        assert _count_batches(app) == 0  # nothing was registered: it is sent again by the producer
        page.click("#batch-form button[type=submit]")
        page.wait_for_url(re.compile(r"/portal/producer/batches/08936000010010/SLOW-1$"))
        assert _count_batches(app) == 1
    finally:
        browser.close()
