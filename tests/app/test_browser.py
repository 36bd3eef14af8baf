"""Browser tests in a real Chromium (Debian's ``chromium``) at a phone viewport, 390x844.

(1) the camera path with a fake camera playing a video of one of our labels; (2) the photo upload;
(3) a Digital Link opened with JavaScript disabled; (4) a counterfeit code -> report form with a photo
-> stored; (5) the English switch changes every visible string; (6) a screenshot of every verdict.
These tests never skip: without Chromium they fail and say what to install.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from urllib.parse import urlsplit

import cv2
import numpy as np
import pytest
from PIL import Image

from registry.labels import LabelData, render_png
from registry.cases import CaseService
from registry.models import Report
from registry.publications import PublicationService
from registry.services import SYSTEM, Actor, Role

from tests.app.browser import PHONE, SCREENSHOTS, camera_phone, launch, phone, playwright  # noqa: F401 (fixture)
from tests.app.verdict_codes import VERDICTS, make_codes
from tests.conftest import GTIN, batch_data

# Letters that only Vietnamese text has (a page in English must have none outside "Tiếng Việt").
VIETNAMESE = re.compile(r"[àáảãạăằắẳẵặâầấẩẫậđèéẻẽẹêềếểễệìíỉĩịòóỏõọôồốổỗộơờớởỡợùúủũụưừứửữựỳýỷỹỵ]", re.IGNORECASE)


@pytest.fixture
def codes(registry, session, world):
    made = make_codes(registry, session, producer_id=world.producer_id, kid=world.kid)
    session.close()  # release SQLite: the live server writes from its own thread
    return made


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


def label_png(url: str, serial: str | None = None) -> Image.Image:
    data = render_png(LabelData(url=url, gtin=GTIN, lot="LOT-1", serial=serial, expiry=None,
                                product_name="Cà phê rang xay"))
    return Image.open(io.BytesIO(data)).convert("RGB")


def _english_shows_the_same_first_check(page) -> None:
    """A genuine unit's first check, switched to English with the page's own link: the same verdict
    and history, not a second check."""
    assert "đã được kiểm tra 1 lần" in page.inner_text("main")
    page.click('a[hreflang="en"]')
    page.wait_for_load_state("networkidle")
    assert page.get_attribute("html", "lang") == "en"
    assert page.get_attribute("[data-verdict]", "data-verdict") == "genuine"
    assert "checked once so far" in page.inner_text("main")


def write_y4m(path: Path, label: Image.Image, frames: int = 20) -> Path:
    """A 640x480 10 fps I420 video of the label on a light table (what the fake camera plays)."""
    canvas = Image.new("RGB", (640, 480), (214, 208, 196))
    fitted = label.copy()
    fitted.thumbnail((600, 440), Image.LANCZOS)
    canvas.paste(fitted, ((640 - fitted.width) // 2, (480 - fitted.height) // 2))
    bgr = cv2.cvtColor(np.asarray(canvas), cv2.COLOR_RGB2BGR)
    i420 = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420).tobytes()
    with path.open("wb") as fh:
        fh.write(b"YUV4MPEG2 W640 H480 F10:1 Ip A1:1 C420jpeg\n")
        for _ in range(frames):
            fh.write(b"FRAME\n")
            fh.write(i420)
    return path


def photo_of(label: Image.Image) -> bytes:
    try:
        from tests.verification.phone_photos import phone_photo
    except ImportError:  # pragma: no cover - the simulator may move to bench/
        from bench.photos import phone_photo
    return phone_photo(label, seed=3)


def visible_text(page, *, without: str = "") -> str:
    """The page's visible text; ``without`` names elements holding data (not interface strings)."""
    return page.evaluate("""(without) => {
        const body = document.body.cloneNode(true);
        if (without) body.querySelectorAll(without).forEach(e => e.remove());
        body.querySelectorAll('[hidden], script, template').forEach(e => e.remove());
        document.body.appendChild(body); body.style.display = 'block';
        const text = body.innerText; body.remove(); return text; }""", without)


# -- (1) camera --------------------------------------------------------------------------------

def test_camera_path_reads_a_label_by_itself(playwright, live_server, codes, tmp_path):
    video = write_y4m(tmp_path / "label.y4m", label_png(codes["genuine"], codes.genuine_serial))
    with camera_phone(playwright, video) as page:
        page.goto(live_server + "/")
        verdict = page.wait_for_selector('[data-verdict="genuine"]', timeout=10_000)
        assert verdict.is_visible()
        assert "Hàng thật" in verdict.inner_text()
        assert re.fullmatch(r"d\.[0-9a-f]{32}", page.input_value("#photo-form input[name=client_id]"))
        assert page.title() == "Hàng thật · Kiểm tra nguồn gốc sản phẩm"  # the tab says it, as a verdict page


# -- (2) photo upload --------------------------------------------------------------------------

def test_upload_path_with_a_photo(playwright, live_server, codes):
    photo = photo_of(label_png(codes["genuine"], codes.genuine_serial))
    browser = launch(playwright)
    try:
        page = phone(browser).new_page()
        failed, errors = [], []  # nothing the page asks for may fail (the favicon included), no script error
        page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(live_server + "/")
        page.set_input_files("#photo", files=[{"name": "photo.jpg", "mimeType": "image/jpeg", "buffer": photo}])
        verdict = page.wait_for_selector("[data-verdict]", timeout=15_000)
        assert verdict.get_attribute("data-verdict") == "genuine"
        assert failed == [] and errors == []
        # Back from the next page shows the verdict again: a POST's answer kept for Back had been
        # the browser's "Confirm form resubmission" page (no-store), and a reload would check again
        shown = page.inner_text(".verdict-view")
        page.goto(live_server + "/recalls")
        page.go_back()
        page.wait_for_selector("[data-verdict]")
        assert page.inner_text(".verdict-view") == shown
    finally:
        browser.close()


def test_a_photo_over_the_limit_is_sent_smaller_and_checked(playwright, live_server, codes):
    """A phone's 50-200 megapixel mode makes photos over the 10 MiB limit: the bare "413" page had
    been the answer. The page sends it smaller, as it sends camera frames."""
    label = label_png(codes["genuine"], codes.genuine_serial)
    rng = np.random.default_rng(7)
    big = Image.fromarray(rng.integers(64, 192, size=(3600, 4800, 3), dtype=np.uint8))  # grain: a large file
    big.paste(label.resize((label.width * 4, label.height * 4), Image.NEAREST), (600, 600))
    buffer = io.BytesIO()
    big.save(buffer, "JPEG", quality=97)
    photo = buffer.getvalue()
    assert len(photo) > 10 * 1024 * 1024
    browser = launch(playwright)
    try:
        page = phone(browser).new_page()
        sent = []  # the posted body's length, as the browser declares it
        page.on("requestfinished",
                lambda r: sent.append(int(r.all_headers().get("content-length", 0))) if r.method == "POST" else None)
        page.goto(live_server + "/")
        page.set_input_files("#photo", files=[{"name": "200mp.jpg", "mimeType": "image/jpeg", "buffer": photo}])
        verdict = page.wait_for_selector("[data-verdict]", timeout=30_000)
        assert verdict.get_attribute("data-verdict") == "genuine"
        assert sent and 0 < max(sent) < 10 * 1024 * 1024
    finally:
        browser.close()


# -- (3) Digital Link without JavaScript -------------------------------------------------------

def test_digital_link_without_javascript(playwright, live_server, codes):
    browser = launch(playwright)
    try:
        page = phone(browser, java_script_enabled=False).new_page()
        page.goto(live_server + path_of(codes["genuine"]))
        verdict = page.locator('[data-verdict="genuine"]')
        assert verdict.is_visible()
        assert "Hàng thật" in verdict.inner_text()
        assert "Cà phê rang xay" in page.inner_text("main")
    finally:
        browser.close()


def test_the_photo_form_without_javascript_shows_the_chosen_photo_and_checks_it(playwright, live_server, codes):
    """With JavaScript off the photo is not sent by itself: the browser's own file field is shown,
    with the chosen file's name, beside the 'Check this photo' button (it had shown nothing)."""
    photo = photo_of(label_png(codes["genuine"], codes.genuine_serial))
    browser = launch(playwright)
    try:
        page = phone(browser, java_script_enabled=False).new_page()
        page.goto(live_server + "/")
        assert page.locator("#photo").bounding_box()["width"] > 100
        page.set_input_files("#photo", files=[{"name": "nhan-hang.jpg", "mimeType": "image/jpeg", "buffer": photo}])
        assert page.locator("#photo-submit").is_visible()
        page.screenshot(path=str(SCREENSHOTS / "photo-chosen-nojs.png"))
        page.click("#photo-submit")
        page.wait_for_load_state()  # the verdict page, parsed (under CI's load the check had come first)
        assert page.locator('[data-verdict="genuine"]').is_visible(), page.inner_text("body")[:600]
        with_js = phone(browser).new_page()  # with JavaScript the field stays hidden behind its button
        with_js.goto(live_server + "/")
        assert with_js.locator("#photo").bounding_box()["width"] < 50
    finally:
        browser.close()


# -- (4) counterfeit -> report -----------------------------------------------------------------

def test_counterfeit_leads_to_a_stored_report(playwright, live_server, codes, session):
    photo = photo_of(label_png(codes["counterfeit"], codes.genuine_serial))
    browser = launch(playwright)
    try:
        page = phone(browser).new_page()
        page.goto(live_server + path_of(codes["counterfeit"]))
        assert page.locator('[data-verdict="counterfeit"]').is_visible()
        page.click("a.button.report")
        page.wait_for_url(re.compile(r"/report\?code="))
        assert page.input_value("#code") == codes["counterfeit"].replace("https://verify.example.vn", live_server) \
            or page.input_value("#code").endswith(path_of(codes["counterfeit"]))
        page.check('input[name="where_kind"][value="market"]')
        page.fill("#where_text", "Chợ Bến Thành, sạp 12")
        page.fill("#seller", "Cô Lan")
        page.fill("#price", "120000")
        # the shopper switches to English to read the form: what was typed stays (it had all gone)
        page.click('a[hreflang="en"]')
        page.wait_for_function("document.documentElement.lang === 'en'")
        assert (page.input_value("#seller"), page.input_value("#where_text"), page.input_value("#price")) == (
            "Cô Lan", "Chợ Bến Thành, sạp 12", "120000")
        assert page.is_checked('input[name="where_kind"][value="market"]')
        page.set_input_files("#photo", files=[{"name": "fake.jpg", "mimeType": "image/jpeg", "buffer": photo}])
        page.click("#report-form button[type=submit]")
        page.wait_for_url(re.compile(r"/report/sent\?case=VN-"))
        case = page.locator("[data-case]").inner_text().strip()
        code = page.locator("[data-code]").inner_text().strip()
        assert re.fullmatch(r"VN-\d{4}-\d{6}", case) and re.fullmatch(r"[0-9A-Z]{5}-[0-9A-Z]{5}", code)
        assert code not in page.url
        page.screenshot(path=str(SCREENSHOTS / "report-sent.png"), full_page=True)
        assert page.inner_text("main").count("ghi lại") + page.inner_text("main").count("Ghi lại") <= 1
        page.set_viewport_size({"width": 320, "height": 640})  # the narrowest phone: each on one line
        for selector in ("[data-case]", "[data-code]"):
            box = page.locator(selector).bounding_box()
            line = page.evaluate(f"parseFloat(getComputedStyle(document.querySelector('{selector}')).lineHeight)")
            assert box["height"] < 1.5 * line and box["x"] + box["width"] <= 320, selector
        page.screenshot(path=str(SCREENSHOTS / "report-sent-320.png"), full_page=True)
        page.set_viewport_size(PHONE)
        page.click("form.followup-now button")  # the shopper follows the report at once
        page.wait_for_load_state()
        assert page.locator("#followup").get_attribute("data-status") == "received"
        report = session.query(Report).filter_by(case_number=case).one()
        assert report.verdict == "counterfeit" and report.seller == "Cô Lan" and report.where_kind == "market"
        assert len(report.photos) == 1 and report.photos[0].media_type == "image/jpeg"
        CaseService(session).transition(Actor(role=Role.INSPECTOR, name="user:minh"), case, to="investigating",
                                        text="going to the market tomorrow")
        session.commit()
        session.close()  # release SQLite: the live server reads next
        # days later, on another phone: the case number and the code as written down by hand
        later = phone(browser).new_page()
        later.goto(live_server + "/report/status")
        later.fill("#case", case.lower())
        later.fill("#code", code.replace("-", " ").lower())
        # a look at the form in English and back: what was typed goes along both ways (it had gone)
        for language in ("en", "vi"):
            later.click(f'a[hreflang="{language}"]')
            later.wait_for_function(f"document.documentElement.lang === '{language}'")
            assert (later.input_value("#case"), later.input_value("#code")) == (
                case.lower(), code.replace("-", " ").lower()), language
        later.click("#followup-form button[type=submit]")
        later.wait_for_load_state()
        assert later.locator("#followup").get_attribute("data-status") == "investigating"
        assert later.locator(".followup-status").inner_text() == "Đang xác minh"
        assert "going to the market" not in later.content()  # what the inspector wrote stays inside
        later.screenshot(path=str(SCREENSHOTS / "report-status.png"), full_page=True)
        # the status read in English: shown again in English (it had been an empty form)
        later.click('a[hreflang="en"]')
        later.wait_for_function("document.documentElement.lang === 'en' && !!document.getElementById('followup')")
        assert later.locator(".followup-status").inner_text() == "Being investigated"
        assert later.locator("#followup").get_attribute("data-status") == "investigating"
    finally:
        browser.close()


# -- (5) language switch -----------------------------------------------------------------------

@pytest.mark.parametrize("which", ["scan", "verdict", "report"])
def test_english_switch_changes_every_visible_string(playwright, live_server, codes, which):
    path = {"scan": "/", "verdict": path_of(codes["recalled"]), "report": "/report?code=x"}[which]
    data = "dd, q, input, textarea"  # product data and typed values are not interface strings
    browser = launch(playwright)
    try:
        page = phone(browser).new_page()
        page.goto(live_server + path)
        page.wait_for_load_state("networkidle")
        before = visible_text(page, without=data)
        page.click('a[hreflang="en"]')
        page.wait_for_load_state("networkidle")
        assert page.get_attribute("html", "lang") == "en"
        after = visible_text(page, without=data)
    finally:
        browser.close()
    language_names = {"Tiếng Việt", "English"}
    lines_before = {line.strip() for line in before.splitlines() if line.strip()} - language_names
    lines_after = {line.strip() for line in after.splitlines() if line.strip()} - language_names
    unchanged = {line for line in lines_before & lines_after if re.search(r"[A-Za-zÀ-ỹ]{2}", line)}
    assert not unchanged, f"strings not translated to English on {which}: {unchanged}"
    leftovers = [line for line in lines_after if VIETNAMESE.search(line)]
    assert not leftovers, f"Vietnamese left on the English {which} page: {leftovers}"
    assert "Tiếng Việt" in after  # the way back stays


def test_switching_a_verdicts_language_is_not_another_check(playwright, live_server, codes):
    """In a real browser (its cookies, the redirect): one look at a verdict in both languages
    stays one check."""
    browser = launch(playwright)
    try:
        page = phone(browser).new_page()
        page.goto(live_server + path_of(codes["genuine"]))
        _english_shows_the_same_first_check(page)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "genuine-switched-to-en.png"), full_page=True)
        page.click('a[hreflang="vi"]')
        page.wait_for_load_state("networkidle")
        assert "đã được kiểm tra 1 lần" in page.inner_text("main")
        page.reload()  # a reload is a check of its own
        assert "đã được kiểm tra 2 lần" in page.inner_text("main")
    finally:
        browser.close()


# -- (6) screenshots ---------------------------------------------------------------------------

def test_screenshot_of_every_verdict(playwright, live_server, codes):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser = launch(playwright)
    try:
        context = phone(browser)
        page = context.new_page()
        for lang in ("vi", "en"):
            page.goto(f"{live_server}/lang/{lang}")
            for verdict in VERDICTS:
                code = codes[verdict]
                url = live_server + (path_of(code) if code.startswith("http") else "/check?code=" + code.replace(" ", "+"))
                page.goto(url)
                element = page.locator("[data-verdict]")
                assert element.get_attribute("data-verdict") == verdict
                box = element.bounding_box()
                assert box and box["width"] <= PHONE["width"] and box["y"] + box["height"] < PHONE["height"]
                # the report action is on the first screen for anything but genuine
                if verdict != "genuine":
                    report = page.locator("a.button.report").bounding_box()
                    assert report["y"] + report["height"] < PHONE["height"] and report["height"] >= 44
                assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
                page.screenshot(path=str(SCREENSHOTS / f"{verdict}-{lang}.png"))
        for name, path in (("scan", "/"), ("report", "/report?code=08936000010010"), ("warnings", "/warnings")):
            page.goto(live_server + path)
            assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
            page.screenshot(path=str(SCREENSHOTS / f"page-{name}-en.png"))
    finally:
        browser.close()
    assert len(list(SCREENSHOTS.glob("*.png"))) >= 2 * len(VERDICTS)


def test_the_photo_button_shows_keyboard_focus(playwright, live_server):
    """The file input is hidden behind its button: tabbing to it must show the focus ring there."""
    browser = launch(playwright)
    try:
        page = phone(browser).new_page()
        page.goto(live_server + "/")
        outline = "() => getComputedStyle(document.querySelector('label[for=photo]')).outlineStyle"
        assert page.evaluate(outline) == "none"
        for _ in range(30):  # Tab through the page until the photo input has the focus
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement && document.activeElement.id") == "photo":
                break
        assert page.evaluate("document.activeElement.id") == "photo"
        assert page.evaluate(outline) == "solid"
    finally:
        browser.close()


def test_a_corrected_record_says_so_on_the_phone(playwright, live_server, codes, registry, session):
    """After the producer corrects the record, the shopper's page shows the corrected facts and
    the day of the correction, in both languages (screenshot genuine-corrected-vi.png)."""
    fix = {**batch_data(lot="LOT-1"), "facility": {"name": "Xưởng Buôn Ma Thuột", "country": "VN"}}
    registry.correct_batch(SYSTEM, GTIN, "LOT-1", fix, reason="Sai tên xưởng")
    session.commit()
    session.close()
    browser = launch(playwright)
    try:
        page = phone(browser).new_page()
        page.goto(live_server + path_of(codes["genuine"]))
        assert page.locator("[data-verdict]").get_attribute("data-verdict") == "genuine"
        corrected = page.locator("#record-corrected")
        assert corrected.is_visible() and "bởi nhà sản xuất" in corrected.inner_text()
        assert "Xưởng Buôn Ma Thuột" in page.inner_text(".facts")
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        page.screenshot(path=str(SCREENSHOTS / "genuine-corrected-vi.png"), full_page=True)
        page.goto(f"{live_server}/lang/en")
        page.goto(live_server + path_of(codes["genuine"]))
        assert "Record corrected" in page.inner_text("#record-corrected")
    finally:
        browser.close()


def test_long_unbroken_text_wraps_on_the_narrowest_phone(playwright, live_server, codes, registry, session):
    """A published text or a recall reason holding a long link or word (what people paste) wraps
    inside a 320-pixel screen instead of making the page scroll sideways."""
    link = "https://www.facebook.com/groups/" + "hanggiahanhnhai" * 8 + "/posts/1234567890123456789"
    PublicationService(session, authority=registry.authority).publish(
        SYSTEM, kind="warning", title="Cảnh báo " + "x" * 90, body=f"Nhóm bán hàng giả: {link}\nĐừng mua.")
    registry.recall(SYSTEM, GTIN, "LOT-1", reason="Xem " + link)
    session.commit()
    session.close()
    browser = launch(playwright)
    try:
        page = phone(browser).new_page()
        page.set_viewport_size({"width": 320, "height": 640})
        for path in ("/warnings", "/recalls", path_of(codes["genuine"])):  # the genuine code's batch is recalled
            page.goto(live_server + path)
            assert link in page.inner_text("main")
            assert page.evaluate("document.documentElement.scrollWidth") <= 320, path
            if path == "/warnings":  # the author's line breaks are kept (they had run together)
                assert page.inner_text(".pub-body").endswith(f"{link}\nĐừng mua.")
        page.screenshot(path=str(SCREENSHOTS / "recalled-long-reason-320.png"), full_page=True)
    finally:
        browser.close()


def test_one_phone_is_one_device_from_the_camera_app_to_the_scan_page(playwright, live_server, codes):
    """A verdict page opened from the phone's camera app runs no script first; the same code typed
    on the scan page afterwards is the same phone, not a second device (it had said 'Checked from
    2 different devices'). Another phone is another device."""
    browser = launch(playwright)
    try:
        page = phone(browser).new_page()
        page.goto(live_server + path_of(codes["genuine"]))  # what the camera app opens
        assert "đã được kiểm tra 1 lần" in page.inner_text("main")
        page.goto(live_server + "/")
        page.fill("#typed-code", codes["genuine"])
        page.click("form.typed button[type=submit]")
        page.wait_for_selector("[data-verdict]")
        text = page.inner_text("main")
        assert "đã được kiểm tra 2 lần" in text and "thiết bị hoặc mạng khác nhau" not in text
        assert "client_id" not in page.url  # the address can be shared: it names no device
        other = phone(browser, user_agent="Another phone").new_page()  # its own cookies and browser
        other.goto(live_server + path_of(codes["genuine"]))
        assert "Đã được kiểm tra từ 2 thiết bị hoặc mạng khác nhau" in other.inner_text("main")
    finally:
        browser.close()


def test_a_camera_verdict_switched_to_english_is_the_same_check(playwright, live_server, codes, tmp_path):
    """The verdict the camera found, switched to English: the same verdict and history in English,
    not a new check (the link had led back to the camera, which read the label again)."""
    video = write_y4m(tmp_path / "label.y4m", label_png(codes["genuine"], codes.genuine_serial))
    with camera_phone(playwright, video) as page:
        page.goto(live_server + "/")
        page.wait_for_selector('[data-verdict="genuine"]', timeout=10_000)
        _english_shows_the_same_first_check(page)


# A phone's built-in barcode reader (Chrome on Android has one; Chromium on Linux does not): it
# reads the code this page names, as the phone's would read the label the fake camera shows.
PHONE_BARCODE_DETECTOR = """
window.BarcodeDetector = class {
  static getSupportedFormats() { return Promise.resolve(['qr_code']); }
  detect() { return Promise.resolve([{ rawValue: %s }]); }
};
"""


@pytest.mark.parametrize("reader", ["the server's decoders", "the phone's own"])
def test_the_camera_says_when_the_service_cannot_check_and_keeps_scanning(playwright, app, codes, tmp_path, reader):
    """The service's database is down (nothing listens where DATABASE_URL points): each check the
    camera sends is answered 503 with Retry-After. The page says so and goes on scanning, trying
    again as the answer asks. With the phone's reader it had stayed on "Code found. Checking…"
    with the camera stopped; with the server's it had gone on sending frames in silence."""
    import json

    from tests.app.test_rate_limits import _free_port
    from tests.conftest import another_app, serving

    video = write_y4m(tmp_path / "label.y4m", label_png(codes["genuine"], codes.genuine_serial))
    down = f"postgresql+psycopg://postgres@127.0.0.1:{_free_port()}/registry"
    with another_app(app.config["INSTANCE_DIR"], down) as unreachable, serving(unreachable) as url:
        with camera_phone(playwright, video) as page:
            if reader == "the phone's own":
                page.add_init_script(PHONE_BARCODE_DETECTOR % json.dumps(codes["genuine"]))
            checks: list[int] = []
            page.on("response", lambda r: checks.append(r.status) if "/api/v1/verify" in r.url else None)
            page.goto(url + "/")
            status = page.locator("#camera-status")
            status.filter(has_text="Dịch vụ tạm thời chưa kiểm tra được mã").wait_for(timeout=15_000)
            page.locator("#camera").wait_for(state="visible")
            page.wait_for_timeout(4_000)  # Retry-After: 1 (the database unreachable), then again
            assert len(checks) >= 2 and set(checks) == {503}, checks
            assert page.locator("[data-verdict]").count() == 0
            assert page.evaluate("document.getElementById('video').srcObject.active")  # still scanning
            if reader == "the phone's own":
                SCREENSHOTS.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(SCREENSHOTS / "camera-service-unavailable.png"))


PHONE_BARCODE_DETECTOR_SEES = """
window.BarcodeDetector = class {
  static getSupportedFormats() { return Promise.resolve(['qr_code', 'ean_13']); }
  detect() { return Promise.resolve(%s.map(function (t) { return { rawValue: t }; })); }
};
"""


def test_the_phones_reader_checks_every_code_it_sees_and_the_most_serious_decides(playwright, live_server, codes):
    """The phone's reader finds the plain EAN-13 first and the recalled batch's QR beside it: both
    are checked, the recall decides and the EAN is listed under it. Only the first code had been
    checked: the page had said 'cannot be verified' and never looked at the recalled QR."""
    import json

    with camera_phone(playwright) as page:
        page.add_init_script(PHONE_BARCODE_DETECTOR_SEES % json.dumps([GTIN[1:], codes["recalled"]]))
        checks: list[str] = []
        page.on("request", lambda r: checks.append(r.url) if "/api/v1/verify" in r.url else None)
        page.goto(live_server + "/")
        verdict = page.wait_for_selector('section[data-verdict="recalled"]', timeout=15_000)
        assert "Đã bị thu hồi" in verdict.inner_text() or "thu hồi" in verdict.inner_text()
        others = page.locator(".other-codes")
        assert others.locator('li[data-verdict="unverifiable"]').count() == 1
        assert GTIN[1:] in others.inner_text()
        assert len(checks) == 2


def test_the_camera_passes_over_a_code_that_is_no_products_and_keeps_scanning(playwright, live_server, codes):
    """A shop's payment QR in view: the camera says a code was read that is not a product's, keeps
    scanning and does not send it again. It had stopped on "No code read: try again closer"."""
    import json

    payment = "00020101021238570010A00000072701270006970422011312345678902080208QRIBFTTA5303704540410005802VN"
    with camera_phone(playwright) as page:
        page.add_init_script(PHONE_BARCODE_DETECTOR_SEES % json.dumps([payment]))
        checks: list[str] = []
        page.on("request", lambda r: checks.append(r.url) if "/api/v1/verify" in r.url else None)
        page.goto(live_server + "/")
        page.locator("#camera-status").filter(has_text="không phải mã của sản phẩm").wait_for(timeout=15_000)
        page.wait_for_timeout(1_500)  # the reader sees it again every 200 ms
        assert len(checks) == 1, checks
        assert page.locator("[data-verdict]").count() == 0
        assert page.evaluate("document.getElementById('video').srcObject.active")


def test_the_camera_says_when_a_code_cannot_be_checked_and_keeps_scanning(playwright, live_server, codes):
    """A code the API refuses to read (longer than its 4,096 characters: 422): the page says this
    code cannot be checked and goes on scanning; it had left "Code found. Checking…" on a stopped
    camera."""
    import json

    with camera_phone(playwright) as page:
        page.add_init_script(PHONE_BARCODE_DETECTOR % json.dumps("https://x.example/" + "a" * 5000))
        checks: list[int] = []
        page.on("response", lambda r: checks.append(r.status) if "/api/v1/verify" in r.url else None)
        page.goto(live_server + "/")
        page.locator("#camera-status").filter(has_text="Không kiểm tra được mã này").wait_for(timeout=15_000)
        for _ in range(50):  # tried again after 5 s (no Retry-After); the CSP allows no test script: poll
            if len(checks) >= 2:
                break
            page.wait_for_timeout(200)
        assert len(checks) >= 2 and set(checks) == {422}, checks
        assert page.evaluate("document.getElementById('video').srcObject.active")


def test_a_report_sent_back_with_errors_has_the_first_field_at_fault_focused(playwright, live_server):  # noqa: F811
    """The page had come back with the focus at its top: a screen reader's user heard the title
    again, and on a phone the field at fault was far below. Required fields say so to assistive tech."""
    browser = launch(playwright)
    try:
        page = phone(browser).new_page()
        page.goto(live_server + "/report")
        # the place is needed unless the link is given: not required as such, its hint says when
        assert page.get_attribute("#where_text", "aria-required") is None
        assert page.locator("#" + page.get_attribute("#where_text", "aria-describedby")).inner_text() == (
            "Không bắt buộc nếu bạn ghi đường dẫn đến cửa hàng, tin đăng hoặc buổi livestream ở dưới.")
        assert page.get_attribute('fieldset[role="radiogroup"]', "aria-required") == "true"
        page.fill("#code", "8936000010010")
        page.fill("#seller", "Cô Lan")
        page.click("#report-form button[type=submit]")
        page.wait_for_selector(".field-error")
        assert page.evaluate("document.activeElement.name") == "where_kind"  # the first field at fault
        assert page.input_value("#seller") == "Cô Lan"
    finally:
        browser.close()
