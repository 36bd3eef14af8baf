"""Server-side tests of the shopper's pages: languages, verdict views, CSP, page weight, catalogue."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from itsdangerous import TimestampSigner
from sqlalchemy import func, select

from app.messages import REASON_TEXT, VERDICT_ADVICE, VERDICT_TITLE
from app.pages import redisplay
from registry.models import ScanEvent
from registry.services import SYSTEM

from tests.app.verdict_codes import GTIN, VERDICTS, make_codes

REPO = Path(__file__).resolve().parents[2]
PO = REPO / "app" / "translations" / "vi" / "LC_MESSAGES" / "messages.po"
MO = PO.with_suffix(".mo")


@pytest.fixture
def codes(registry, session, world):
    return make_codes(registry, session, producer_id=world.producer_id, kid=world.kid)


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


def _page(client, code: str, **headers):
    if code.startswith("http"):
        return client.get(_path(code), headers={"Accept": "text/html", **headers})
    return client.get("/check", query_string={"code": code}, headers=headers)


# -- languages ---------------------------------------------------------------------------------

def test_vietnamese_is_the_default(client):
    html = client.get("/").get_data(as_text=True)
    assert '<html lang="vi">' in html
    assert "Kiểm tra nguồn gốc sản phẩm" in html


def test_accept_language_english(client):
    html = client.get("/", headers={"Accept-Language": "en-US,en;q=0.9"}).get_data(as_text=True)
    assert '<html lang="en">' in html
    assert "Check where a product comes from" in html


def test_accept_language_prefers_vietnamese_when_listed_first(client):
    html = client.get("/", headers={"Accept-Language": "vi-VN,vi;q=0.9,en;q=0.8"}).get_data(as_text=True)
    assert '<html lang="vi">' in html


def test_switch_is_remembered_over_accept_language(client):
    response = client.get("/lang/en?next=/warnings")
    assert response.status_code == 302 and response.headers["Location"].endswith("/warnings")
    assert "lang=en" in response.headers["Set-Cookie"]
    html = client.get("/", headers={"Accept-Language": "vi"}).get_data(as_text=True)
    assert '<html lang="en">' in html
    client.get("/lang/vi")
    html = client.get("/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert '<html lang="vi">' in html


def test_switch_links_carry_hreflang_and_names(client):
    html = client.get("/").get_data(as_text=True)
    assert re.search(r'<a href="/lang/vi[^"]*" hreflang="vi"[^>]*>Tiếng Việt</a>', html)
    assert re.search(r'<a href="/lang/en[^"]*" hreflang="en"[^>]*>English</a>', html)


def test_switch_refuses_open_redirects(client):
    for target in ("https://evil.example/", "//evil.example/", "javascript:alert(1)",
                   "/\r\nSet-Cookie: x=1", "/warnings\x00", "/\tevil"):
        response = client.get("/lang/en", query_string={"next": target})
        assert response.status_code == 302, target  # a control character had made it a 500
        assert response.headers["Location"] in ("/", "http://localhost/")


# -- verdict views -----------------------------------------------------------------------------

@pytest.mark.parametrize("lang", ["vi", "en"])
def test_every_verdict_renders_with_its_hook(client, codes, lang):
    for verdict in VERDICTS:
        response = _page(client, codes[verdict], **{"Accept-Language": lang})
        html = response.get_data(as_text=True)
        assert response.status_code == 200, verdict
        assert f'data-verdict="{verdict}"' in html, verdict
        assert html.count("data-verdict=") == 1
        report_links = re.findall(r'<a class="button report[^"]*" href="([^"]+)"', html)
        if verdict == "genuine":
            assert not report_links
        else:
            assert report_links and "report" in report_links[0], verdict


def test_genuine_view_shows_origin_dates_and_history(client, codes):
    html = _page(client, codes["genuine"], **{"Accept-Language": "en"}).get_data(as_text=True)
    assert "Cà phê rang xay" in html and "HTX Highland" in html and "Xưởng Ea Tu" in html
    assert "Vietnam" in html  # the facility's country, named in the page language
    assert "VietGAP (VG-1)" in html
    assert re.search(r"First checked on [A-Z][a-z]+ \d{1,2}, \d{4}; checked once so far", html)
    html = _page(client, codes["genuine"], **{"Accept-Language": "en"}).get_data(as_text=True)
    assert "checked 2 times so far" in html
    vi = _page(client, codes["genuine"]).get_data(as_text=True)
    assert "Việt Nam" in vi and re.search(r"Kiểm tra lần đầu ngày \d{1,2} tháng \d{1,2} năm \d{4};", vi)


@pytest.mark.parametrize(("language", "form", "written"), [
    ("vi", "long", "7 tháng 12 năm 2026"), ("vi", "medium", "07/12/2026"), ("vi", "short", "07/12/26"),
    ("en", "long", "December 7, 2026"), ("en", "medium", "Dec 7, 2026")])
def test_dates_are_written_as_the_pages_language_writes_them(app, language, form, written):
    """CLDR's Vietnamese long date is "7 tháng 12, 2026", an English order with a comma; Vietnamese
    write "(ngày) 7 tháng 12 năm 2026", and 07/12/2026 in lists. A time is the date in Vietnam."""
    from datetime import date, datetime, timezone

    from app.i18n import local_date

    with app.test_request_context(headers={"Accept-Language": language}):
        assert local_date(date(2026, 12, 7), form) == written
        assert local_date(datetime(2026, 12, 6, 17, 30, tzinfo=timezone.utc), form) == written  # 00:30 in Hà Nội


@pytest.mark.parametrize(("text", "lang"), [
    ("Nước mắm Phú Quốc", "vi"), ("Xưởng Ea Tu", "vi"), ("Đắk Lắk", "vi"), ("Trà Shan tuyết", "vi"),
    ("Mật ong", "vi"), ("Nguyễn Văn A", "vi"), ("Hạt điều", "vi"),
    ("Highland", None), ("Café crème", None), ("São Paulo", None), ("Cà phê", None), ("", None), (None, None)])
def test_which_typed_text_is_vietnamese(text, lang):
    """A letter only Vietnamese writing uses decides; accents French or Portuguese also use do not."""
    from app.i18n import written_in

    assert written_in(text) == lang


def test_vietnamese_names_are_marked_as_such_on_english_pages(client, codes, session, registry):
    """WCAG 3.1.2 (language of parts): on an English page a screen reader reads a Vietnamese
    name in Vietnamese; typed text is escaped all the same."""
    en = _page(client, codes["genuine"], **{"Accept-Language": "en"}).get_data(as_text=True)
    assert '<dd><span lang="vi">Xưởng Ea Tu</span>, <span lang="vi">Đắk Lắk</span></dd>' in en
    assert "<dd>Cà phê rang xay · Highland</dd>" in en  # no letter in it is Vietnamese only: the page's language
    vi = _page(client, codes["genuine"]).get_data(as_text=True)
    assert "<dd>Xưởng Ea Tu, Đắk Lắk</dd>" in vi and '<span lang="vi">' not in vi  # the page's own language

    from registry.publications import PublicationService

    PublicationService(session, authority=registry.authority).publish(
        SYSTEM, kind="warning", title="<b>Sữa bột giả</b>", product="Similac", body="Hộp giả có mã vạch in mờ.")
    session.commit()
    en = client.get("/warnings", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert '<h2><span lang="vi">&lt;b&gt;Sữa bột giả&lt;/b&gt;</span></h2>' in en
    assert '<p class="pub-body"><span lang="vi">Hộp giả có mã vạch in mờ.</span></p>' in en and "<dd>Similac</dd>" in en
    PublicationService(session, authority=registry.authority).publish(
        SYSTEM, kind="violator", title="Bán hàng giả", name="Cửa hàng A", decision_ref="QĐ-123/2026/XPHC")
    session.commit()
    en = client.get("/violators", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert '<dd><span lang="vi">QĐ-123/2026/XPHC</span></dd>' in en  # a decision's number, in Vietnamese


def _language_link(html: str, lang: str) -> str:
    """The page's own link to its ``lang`` version (/lang/<lang>?next=...)."""
    found = re.search(rf'<a href="(/lang/{lang}[^"]*)" hreflang="{lang}"', html)
    assert found, f"no {lang} link"
    return found.group(1).replace("&amp;", "&")


def _switch(client, link: str, **headers) -> str:
    """Follow a language link and its redirect back to the page."""
    switch = client.get(link, headers=headers)
    assert switch.status_code == 302
    return client.get(switch.headers["Location"], headers={"Accept": "text/html", **headers}).get_data(as_text=True)


def _scan_events(app, session) -> int:
    """Scan events written, after the writer has flushed what it holds."""
    app.extensions["scan_writer"].flush()
    try:
        return session.scalar(select(func.count()).select_from(ScanEvent))
    finally:
        session.rollback()  # sessions write-lock SQLite (BEGIN IMMEDIATE): the next flush must not wait


def test_switching_language_shows_the_same_check_again(app, client, session, codes):
    """Switching the language of a verdict page loads it again: the same verdict, the same history,
    and no new check (it had counted one per switch: 'checked 2 times' after one look in two
    languages). A second device is a new check, and the warning about other devices follows it."""
    url = codes["genuine"]
    first = _page(client, url, **{"Accept-Language": "vi"}).get_data(as_text=True)
    assert 'data-verdict="genuine"' in first and "đã được kiểm tra 1 lần" in first
    english = _switch(client, _language_link(first, "en"))
    assert 'data-verdict="genuine"' in english and "checked once so far" in english
    assert "different devices" not in english and "rarely have been checked" not in english
    vietnamese = _switch(client, _language_link(english, "vi"))
    assert "đã được kiểm tra 1 lần" in vietnamese and "thiết bị hoặc mạng khác nhau" not in vietnamese
    assert _scan_events(app, session) == 1
    phone, other_client = {"User-Agent": "another phone"}, app.test_client()  # its own cookies
    other = _page(other_client, url, **phone).get_data(as_text=True)
    assert "đã được kiểm tra 2 lần" in other
    assert "Đã được kiểm tra từ 2 thiết bị hoặc mạng khác nhau" in other
    english = _switch(other_client, _language_link(other, "en"), **phone)
    assert "checked 2 times so far" in english and "Checked from 2 different devices or networks" in english
    assert _scan_events(app, session) == 2


def test_a_typed_code_switched_to_english_is_not_checked_again(app, client, session, codes):
    html = client.get("/check", query_string={"code": codes["genuine"]}).get_data(as_text=True)
    assert "đã được kiểm tra 1 lần" in html
    english = _switch(client, _language_link(html, "en"))
    assert 'data-verdict="genuine"' in english and "checked once so far" in english
    assert _scan_events(app, session) == 1


def test_a_shown_again_verdict_is_still_checked_now(client, codes, registry, session):
    """Shown again is not copied: the recall made between the look and the switch shows."""
    html = _page(client, codes["genuine"]).get_data(as_text=True)
    assert 'data-verdict="genuine"' in html
    registry.recall(SYSTEM, GTIN, "LOT-1", reason="Nhiễm khuẩn")
    session.commit()
    english = _switch(client, _language_link(html, "en"))
    assert 'data-verdict="recalled"' in english and "checked once so far" in english


def test_only_the_pages_own_link_spares_a_check(app, client, session, codes):
    """A switch to a verdict page spares its next load only with the token of the page's own link,
    for the client the page was shown to: a link made elsewhere (a seller's page sending shoppers
    through /lang so that their checks leave no trace) or a token of another client count as
    checks, and so do a reload, another page, a forged or a stale cookie."""
    url, other = codes["genuine"], codes["expired"]
    html = _page(client, url).get_data(as_text=True)
    link = _language_link(html, "en")
    assert "shown=" in link
    bare = client.get("/lang/en", query_string={"next": _path(url)})  # no token: a link made elsewhere
    assert not any(h.startswith(redisplay.COOKIE + "=") for h in bare.headers.getlist("Set-Cookie"))
    assert "checked 2 times so far" in _switch(client, "/lang/en?" + urlencode({"next": _path(url)}))
    assert "checked 3 times so far" in _switch(client, link, **{"User-Agent": "another phone"})
    switch = client.get(link)
    assert any(h.startswith(redisplay.COOKIE + "=") for h in switch.headers.getlist("Set-Cookie"))
    _page(client, other)  # another page: checked, and the cookie is spent
    assert client.get_cookie(redisplay.COOKIE) is None
    assert _scan_events(app, session) == 4
    english = _switch(client, link)  # the page's own link, as often as its token lasts
    assert "checked 3 times so far" in english
    assert "checked 4 times so far" in _page(client, url).get_data(as_text=True)  # a reload is a check
    client.set_cookie(redisplay.COOKIE, "forged-value")
    assert "checked 5 times so far" in _page(client, url).get_data(as_text=True)
    client.get(link)
    cookie = client.get_cookie(redisplay.COOKIE).value
    client.get("/warnings")  # a page that checks nothing leaves the cookie alone
    assert client.get_cookie(redisplay.COOKIE).value == cookie
    assert "checked 5 times so far" in _page(client, url).get_data(as_text=True)
    assert _scan_events(app, session) == 6


def test_a_stale_language_link_or_cookie_counts(app, client, session, codes, monkeypatch):
    url = codes["genuine"]
    html = _page(client, url).get_data(as_text=True)
    link = _language_link(html, "en")

    def later(seconds: int) -> None:  # what the tokens' signer takes for now
        monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: int(time.time()) + seconds)

    later(redisplay.LINK_MAX_AGE + 5)
    assert "checked 2 times so far" in _switch(client, link)  # the link's token has expired
    monkeypatch.undo()
    client.get(link)  # a fresh switch: its cookie, then the page loaded too late
    later(redisplay.MAX_AGE + 5)
    assert "checked 3 times so far" in _page(client, url).get_data(as_text=True)
    monkeypatch.undo()
    assert _scan_events(app, session) == 3


def test_switching_language_elsewhere_sets_no_redisplay_cookie(client):
    for target in ("/warnings", "/", "/report"):
        assert "shown=" not in _language_link(client.get(target).get_data(as_text=True), "en")
        switch = client.get("/lang/en", query_string={"next": target})
        assert switch.status_code == 302
        assert not any(redisplay.COOKIE in h for h in switch.headers.getlist("Set-Cookie"))


def test_verification_json_counts_clients_for_unit_codes_only(client, codes, registry):
    unit = client.get("/api/v1/verify", query_string={"code": codes["genuine"], "client_id": "a"}).get_json()
    assert unit["scans"]["count"] == 1 and unit["scans"]["clients"] == 1
    again = client.get("/api/v1/verify", query_string={"code": codes["genuine"], "client_id": "a"}).get_json()
    assert again["scans"]["count"] == 2 and again["scans"]["clients"] == 1
    other = client.get("/api/v1/verify", query_string={"code": codes["genuine"], "client_id": "b"}).get_json()
    assert other["scans"]["count"] == 3 and other["scans"]["clients"] == 2
    batch_url = registry.batch_url(registry.batch(GTIN, "LOT-1"))
    batch = client.get("/api/v1/verify", query_string={"code": batch_url, "client_id": "a"}).get_json()
    assert batch["verdict"] == "genuine" and batch["code"]["serial"] is None
    assert batch["scans"]["count"] == 1 and batch["scans"]["clients"] is None


def test_a_counterfeit_codes_data_is_not_presented_as_facts(client, codes):
    """What a forged code carries (its expiry, its serial) is shown as what the code says, not as
    facts about the product; a genuine code's page shows the registry's facts."""
    forged = _page(client, codes["counterfeit"], **{"Accept-Language": "en"}).get_data(as_text=True)
    assert "What the code says" in forged and "The registry does not confirm this" in forged
    assert "About this product" not in forged
    genuine = _page(client, codes["genuine"], **{"Accept-Language": "en"}).get_data(as_text=True)
    assert "About this product" in genuine and "What the code says" not in genuine


def test_report_link_prefills_the_code(client, codes):
    html = _page(client, codes["counterfeit"]).get_data(as_text=True)
    href = re.search(r'<a class="button report[^"]*" href="([^"]+)"', html).group(1).replace("&amp;", "&")
    form = client.get(href).get_data(as_text=True)
    assert 'name="code" value="' in form
    value = re.search(r'id="code" name="code" value="([^"]*)"', form).group(1).replace("&amp;", "&")
    assert _path(value) == _path(codes["counterfeit"])  # the page names the host it was opened on


def test_a_typed_serial_is_told_what_to_type_not_to_come_closer(client, codes):
    """What the scan page asks to type, typed wrong (the serial printed on the label): the advice
    says what can be typed; it had said to try closer, with more light, or to type the code."""
    html = client.get("/check", query_string={"code": codes.genuine_serial}).get_data(as_text=True)
    assert 'data-verdict="unreadable"' in html
    assert "Chỉ số sê-ri thì không kiểm tra được: hãy quét mã QR" in html and "gần hơn" not in html
    english = client.get("/check", query_string={"code": codes.genuine_serial},
                         headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "A serial number alone cannot be checked" in english and "closer" not in english
    link = _page(client, "https://verify.example.vn/01/1234", **{"Accept-Language": "en"}).get_data(as_text=True)
    assert 'data-verdict="unreadable"' in link and "Point the camera at the product's own QR code" in link.replace(
        "&#39;", "'")  # what a camera opened: camera advice


def test_a_code_read_that_is_no_products_says_so_not_come_closer(client):
    """A shop's payment QR, or a link with a wrong check digit: a code was read. The heading had
    said "No code read", the advice to come closer with more light, over a reason saying the
    text read is not a product code. The text read is shown."""
    payment = "00020101021138570010A000000727012700069704220113VQRQ00012345670208QRIBFTTA53037045802VN6304ABCD"
    for text in (payment, "https://shop.example.vn/pay?order=123", "(01)08936000010011(10)LOT-1"):
        html = client.get("/check", query_string={"code": text}, headers={"Accept-Language": "en"}).get_data(
            as_text=True).replace("&#39;", "'").replace("&amp;", "&")
        assert 'data-verdict="unreadable"' in html
        heading = re.search(r'<h1 id="verdict-title"[^>]*>([^<]*)</h1>', html).group(1)
        assert heading == "Not a product code" and "closer" not in html
        assert f'<span class="mono read-text">{text}</span>' in html
    vietnamese = client.get("/check", query_string={"code": payment}).get_data(as_text=True)
    assert "Không phải mã sản phẩm" in vietnamese and "Chưa đọc được mã" not in vietnamese


def test_the_digits_under_a_barcode_typed_in_their_printed_groups_are_one_number(client):
    """8 936000 010010 is how an EAN-13 is printed: typed so (or with hyphens), it is checked as
    the number; it had answered 'this is not a product code'."""
    plain = client.get("/check", query_string={"code": "8936000010010"}).get_data(as_text=True)
    verdict = re.search(r'data-verdict="(\w+)"', plain).group(1)
    assert verdict != "unreadable"
    for typed in ("8 936000 010010", " 8936 0000 1001 0 ", "8936-0000-1001-0", "8\u00a0936000\u00a0010010"):
        html = client.get("/check", query_string={"code": typed}).get_data(as_text=True)
        assert f'data-verdict="{verdict}"' in html, typed
    words = client.get("/check", query_string={"code": "LOT 12"}).get_data(as_text=True)
    assert 'data-verdict="unreadable"' in words  # only digits are regrouped
    # an East Asian keyboard's full-width digits are the same digits
    full_width = "".join(chr(ord(digit) + 0xFEE0) for digit in "8936000010010")  # "８９３６…"
    wide = client.get("/check", query_string={"code": full_width}).get_data(as_text=True)
    assert f'data-verdict="{verdict}"' in wide


def test_a_codes_address_typed_without_https_or_with_a_last_slash_is_that_code(client, codes):
    """A shopper copying the address under a QR code leaves out "https://" or adds a slash: the page
    had said "not a product code"."""
    genuine = codes["genuine"]
    expected = re.search(r'data-verdict="(\w+)"',
                         client.get("/check", query_string={"code": genuine}).get_data(as_text=True)).group(1)
    path, _, query = genuine.partition("?")
    for typed in (genuine.split("://", 1)[1], f"{path}/?{query}", f"{path.split('://', 1)[1]}/?{query}"):
        html = client.get("/check", query_string={"code": typed}).get_data(as_text=True)
        assert f'data-verdict="{expected}"' in html, typed


def test_recall_reason_and_day_are_shown(client, codes):
    """When the batch was recalled, in Vietnam's calendar (the page had said why, never when)."""
    from babel.dates import format_date

    from verification.localtime import vietnam_date

    html = _page(client, codes["recalled"], **{"Accept-Language": "en"}).get_data(as_text=True)
    assert "contamination" in html
    today = vietnam_date()
    assert f'<li id="recalled-on">Recalled on {format_date(today, format="long", locale="en")}.</li>' in html
    vietnamese = _page(client, codes["recalled"]).get_data(as_text=True)
    assert f"Thu hồi ngày {today.day} tháng {today.month} năm {today.year}." in vietnamese
    assert client.get("/api/v1/verify", query_string={"code": codes["recalled"]}).get_json()["batch"]["recalled_at"]
    genuine = _page(client, codes["genuine"]).get_data(as_text=True)
    assert 'id="recalled-on"' not in genuine


def test_a_recall_under_a_revoked_key_still_says_what_to_do(client, codes, registry, session, world):
    """Its key revoked, a recalled batch's code is suspect (the graver verdict); the page had then
    dropped the recall's reason and the advice not to use the product."""
    registry.revoke_key(SYSTEM, world.kid, compromised_at=None)
    session.commit()
    html = _page(client, codes["recalled"], **{"Accept-Language": "en"}).get_data(as_text=True)
    assert 'data-verdict="suspect"' in html
    assert "Do not use this product: its producer has recalled this batch. Return it to the seller." in html
    assert "Reason given for the recall:" in html and "contamination" in html
    genuine = _page(client, codes["genuine"], **{"Accept-Language": "en"}).get_data(as_text=True)
    assert 'data-verdict="suspect"' in genuine and "Do not use this product" not in genuine


def test_an_expired_unit_under_a_revoked_key_still_says_not_to_use_it(client, codes, registry, session, world):
    """Suspect (its key revoked) and past its expiry: the page had given the suspect advice alone,
    the expiry one only as a line under "Why", where the recall's advice was repeated."""
    registry.revoke_key(SYSTEM, world.kid, compromised_at=None)
    session.commit()
    html = _page(client, codes["expired"], **{"Accept-Language": "en"}).get_data(as_text=True)
    assert 'data-verdict="suspect"' in html and 'id="expired-too"' in html
    assert "This product is past its expiry date. Do not use it." in html
    genuine = _page(client, codes["genuine"], **{"Accept-Language": "en"}).get_data(as_text=True)
    assert 'data-verdict="suspect"' in genuine and 'id="expired-too"' not in genuine


def _post_label_photo(client, codes, **form) -> str:
    from registry.labels import LabelData, render_png
    import io

    png = render_png(LabelData(url=codes["genuine"], gtin="08936000010010", lot="LOT-1", serial=codes.genuine_serial,
                               expiry=None, product_name="Cà phê"))
    page = client.get("/").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = client.post("/check", data={"csrf_token": token, "image": (io.BytesIO(png), "label.png"), **form},
                           content_type="multipart/form-data")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_photo_upload_without_javascript(client, codes):
    assert 'data-verdict="genuine"' in _post_label_photo(client, codes, client_id="abc")


@pytest.mark.parametrize("form", [{}, {"client_id": "kept-by-the-page-script"}])
def test_a_photo_verdict_switched_to_english_is_the_same_check(app, client, session, codes, form):
    """A photo's verdict (POST /check) cannot be loaded again: its language links lead to the same
    code's /check?code= page, shown again without a new check (they had led to the empty scan page)."""
    html = _post_label_photo(client, codes, **form)
    assert "đã được kiểm tra 1 lần" in html
    link = _language_link(html, "en")
    assert "next=/check?code%3D" in link and "shown=" in link
    english = _switch(client, link)
    assert 'data-verdict="genuine"' in english and "checked once so far" in english
    assert codes.genuine_serial in english
    assert _scan_events(app, session) == 1


def test_a_photo_of_two_labels_shows_the_most_serious_and_names_the_other(client, codes):
    """A recalled pack beside a genuine one: the page decides on the recall and lists the genuine
    code under it; it had shown one verdict and said nothing of the other code."""
    import io

    from PIL import Image

    from registry.labels import LabelData, render_png

    labels = [Image.open(io.BytesIO(render_png(LabelData(url=codes[v], gtin=GTIN, lot=lot, serial=None, expiry=None,
                                                         product_name="Cà phê")))).convert("RGB")
              for v, lot in (("genuine", "LOT-1"), ("recalled", "LOT-R"))]
    sheet = Image.new("RGB", (sum(i.width for i in labels) + 60, max(i.height for i in labels) + 40), "white")
    sheet.paste(labels[0], (20, 20))
    sheet.paste(labels[1], (labels[0].width + 40, 20))
    photo = io.BytesIO()
    sheet.save(photo, "PNG")
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/").get_data(as_text=True)).group(1)
    html = client.post("/check", data={"csrf_token": token, "image": (io.BytesIO(photo.getvalue()), "two.png")},
                       content_type="multipart/form-data", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert re.search(r'<section class="verdict v-recalled" data-verdict="recalled"', html)
    others = html[html.index('<section class="other-codes">'):]
    others = others[:others.index("</section>")]
    assert "Other codes in this picture" in others and 'data-verdict="genuine"' in others
    assert "<strong>Genuine</strong>: " in others and "Cà phê rang xay" in others
    assert codes["genuine"][:100].replace("&", "&amp;") in others  # the text read, cut short


def test_photo_upload_rejects_a_text_file_with_a_message(client):
    import io

    page = client.get("/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = client.post("/check", data={"csrf_token": token, "image": (io.BytesIO(b"hello" * 20), "a.jpg")},
                           content_type="multipart/form-data", headers={"Accept-Language": "en"})
    assert response.status_code == 415
    assert "This file is not a photo" in response.get_data(as_text=True)


def test_photo_form_needs_csrf(client):
    import io

    response = client.post("/check", data={"image": (io.BytesIO(b"x"), "a.jpg")}, content_type="multipart/form-data",
                           headers={"Accept": "text/html"})
    assert response.status_code == 400
    assert "Phiên làm việc đã hết hạn" in response.get_data(as_text=True)  # the catalogue's, not Flask-WTF's
    assert "CSRF" not in response.get_data(as_text=True)


@pytest.mark.parametrize("language, title, text", [
    ("vi", "Không tìm thấy trang", "Không có trang nào ở địa chỉ này."),
    ("en", "Page not found", "There is no page at this address.")])
def test_error_pages_speak_the_pages_language(client, language, title, text):
    page = client.get("/no/such/page", headers={"Accept": "text/html", "Accept-Language": language})
    assert page.status_code == 404
    html = page.get_data(as_text=True)
    assert text in html and "requested URL" not in html
    # what happened, in words, heads the page and names its tab; the number stays below, small
    assert f"<title>{title}</title>" in html and f"<h1>{title}</h1>" in html
    assert '<p class="small">' + ("Mã lỗi 404" if language == "vi" else "Error 404") + "</p>" in html
    api = client.get("/api/v1/no-such-thing", headers={"Accept-Language": language})  # the API keeps JSON
    assert api.status_code == 404 and api.get_json()["error"]["code"] == "NOT_FOUND"


def test_fragment_renders_the_api_answer(client, codes):
    page = client.get("/").get_data(as_text=True)
    token = re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)
    result = client.get("/api/v1/verify", query_string={"code": codes["recalled"], "client_id": "c1"}).json
    response = client.post("/fragment/verdict", json={"result": result, "text": codes["recalled"]},
                           headers={"X-CSRFToken": token})
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and 'data-verdict="recalled"' in html and "/report?code=" in html
    assert "<html" not in html  # the fragment only
    bad = client.post("/fragment/verdict", json={"result": {"verdict": "great"}}, headers={"X-CSRFToken": token})
    assert bad.status_code == 400
    assert client.post("/fragment/verdict", json={"result": result}).status_code == 400  # no CSRF token


def test_fragment_of_an_image_answer_without_codes_is_unreadable(client):
    page = client.get("/").get_data(as_text=True)
    token = re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)
    response = client.post("/fragment/verdict", json={"result": {"verdict": "unreadable", "codes": [],
                                                                 "reasons": [{"code": "NO_CODE_FOUND"}]}},
                           headers={"X-CSRFToken": token})
    assert 'data-verdict="unreadable"' in response.get_data(as_text=True)


# -- public lists ------------------------------------------------------------------------------

def test_public_lists_render_newest_first_and_search(app, client, registry, session):
    from registry.publications import PublicationService
    from registry.services import SYSTEM

    service = PublicationService(session, authority=registry.authority)
    service.publish(SYSTEM, kind="warning", title="Sữa bột giả nhãn Abbott", product="Sữa bột Similac")
    service.publish(SYSTEM, kind="warning", title="Mật ong pha đường", product="Mật ong rừng U Minh")
    service.publish(SYSTEM, kind="violator", title="Bán hàng giả", name="Cửa hàng Phúc An", tax_code="0101",
                    place="Chợ Đồng Xuân, Hà Nội", decision_ref="QĐ 7/2026")
    session.commit()
    html = client.get("/warnings").get_data(as_text=True)
    assert html.index("Mật ong pha đường") < html.index("Sữa bột giả nhãn Abbott")
    html = client.get("/warnings", query_string={"q": "sua bot"}).get_data(as_text=True)
    assert "Sữa bột giả nhãn Abbott" in html and "Mật ong" not in html.split("<ol")[1]
    html = client.get("/violators", query_string={"q": "phuc an"}).get_data(as_text=True)
    assert "Cửa hàng Phúc An" in html and 'type="search"' in html
    html = client.get("/violators", query_string={"q": "zzz"}, headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Nothing found for this search." in html


def test_recalled_batches_are_listed_for_shoppers_newest_first_and_searchable(client, registry, session, world):
    """A recall was in the trust list and the log, for machines, and shown only to who scanned the
    goods: shoppers had no page listing what not to use."""
    from tests.conftest import batch_data

    assert "Chưa có lô hàng nào bị thu hồi." in client.get("/recalls").get_data(as_text=True)
    for lot, product in (("LOT-A", "Nước mắm Phú Quốc"), ("LOT-B", "Mật ong <rừng>")):
        data = batch_data(lot=lot)
        data["product"] = {**data["product"], "name": product}
        registry.register_batch(SYSTEM, data, producer_id=world.producer_id)
    registry.register_batch(SYSTEM, batch_data(lot="LOT-KEPT"), producer_id=world.producer_id)
    registry.recall(SYSTEM, GTIN, "LOT-A", reason="Nhiễm khuẩn")
    registry.recall(SYSTEM, GTIN, "LOT-B", reason="Sai nhãn")
    session.commit()
    html = client.get("/recalls").get_data(as_text=True)
    listed = re.findall(r'data-recall="([^"]+)"', html)
    assert listed == [f"{GTIN}/LOT-B", f"{GTIN}/LOT-A"]  # newest first; LOT-KEPT is not recalled
    assert "Mật ong &lt;rừng&gt;" in html and "Sai nhãn" in html and "HTX Highland" in html
    found = client.get("/recalls", query_string={"q": "nuoc mam"}).get_data(as_text=True)
    assert re.findall(r'data-recall="([^"]+)"', found) == [f"{GTIN}/LOT-A"]
    assert re.findall(r'data-recall="([^"]+)"', client.get("/recalls", query_string={"q": "LOT-B"})
                      .get_data(as_text=True)) == [f"{GTIN}/LOT-B"]
    english = client.get("/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert '<a href="/recalls">Recalled products</a>' in english


# -- CSP and weight ----------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/", "/report?code=x", "/warnings", "/violators", "/recalls",
                                  "/check?code=08936000010010"])
def test_no_inline_script_or_style(client, path):
    response = client.get(path)
    html = response.get_data(as_text=True)
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["Permissions-Policy"] == "camera=(self), geolocation=(self)"  # the scanner's camera
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert "src=" in tag, tag
    assert not re.search(r"<script\b[^>]*>\s*[^<\s]", html), "inline script body"
    assert "<style" not in html
    assert not re.search(r'\sstyle="', html), "inline style attribute"
    assert not re.search(r'\son[a-z]+="', html), "inline event handler"
    assert "//cdn" not in html and "https://" not in html.replace('placeholder="https://"', "")


def test_scan_page_is_under_60_kb(client):
    html = client.get("/").data
    assets = re.findall(r'(?:href|src)="(/static/[^"]+)"', html.decode())
    assert any(a.endswith(".css") for a in assets) and any(a.endswith(".js") for a in assets)
    total = len(html) + sum(len(client.get(a).data) for a in assets)
    assert total < 60 * 1024, f"scan page weighs {total} bytes"


def test_scan_page_has_camera_and_plain_photo_form(client):
    html = client.get("/").get_data(as_text=True)
    assert re.search(r'<input[^>]+type="file"[^>]+accept="image/\*"[^>]+capture="environment"', html)
    assert re.search(r'<form[^>]+method="post"[^>]+action="/check"[^>]+enctype="multipart/form-data"', html)
    assert '<video id="video"' in html


# -- the catalogue -----------------------------------------------------------------------------

def _t(value):
    return tuple(value) if isinstance(value, (list, tuple)) else value


def test_compiled_catalogue_matches_the_po():
    result = subprocess.run([sys.executable, str(REPO / "tools" / "compile_translations.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    with PO.open("rb") as fh:
        po = {_t(m.id): _t(m.string) for m in read_po(fh) if m.id}
    with MO.open("rb") as fh:
        mo = {_t(m.id): _t(m.string) for m in read_mo(fh) if m.id}
    assert po == mo


def _used_msgids() -> set:
    method_map = [("app/**.py", "python"), ("app/templates/**.html", "jinja2")]
    options = {"app/templates/**.html": {"extensions": "jinja2.ext.i18n"}}
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}
    found = set()
    for _file, _line, message, _comments, _ctx in extract_from_dir(str(REPO), method_map, options, keywords=keywords):
        found.add(message)
    return found


def test_every_msgid_has_a_vietnamese_translation():
    with PO.open("rb") as fh:
        catalog = read_po(fh)
    used = _used_msgids()
    assert len(used) > 100
    for message in (*VERDICT_TITLE.values(), *VERDICT_ADVICE.values(), *REASON_TEXT.values()):
        assert message in used
    missing = []
    for msgid in used:
        entry = catalog.get(msgid if isinstance(msgid, str) else msgid[0])
        strings = [] if entry is None else ([entry.string] if isinstance(entry.string, str) else list(entry.string))
        if entry is None or entry.fuzzy or not all(s.strip() for s in strings):
            missing.append(msgid)
    assert not missing, f"untranslated: {missing}"


def test_an_unexpected_error_is_a_page_for_a_browser_and_json_for_the_api(app, caplog):
    def boom():
        raise RuntimeError("a bug")

    app.add_url_rule("/boom-for-test", "boom_for_test", boom)
    client = app.test_client()
    page = client.get("/boom-for-test", headers={"Accept": "text/html", "Accept-Language": "vi"})
    assert page.status_code == 500 and page.mimetype == "text/html"
    assert "Đã xảy ra lỗi nội bộ và lỗi đã được ghi lại." in page.get_data(as_text=True)
    assert "a bug" not in page.get_data(as_text=True)  # logged, never shown
    api = client.get("/boom-for-test", headers={"Accept": "application/json"})
    assert api.status_code == 500 and api.get_json()["error"]["code"] == "INTERNAL_ERROR"
    assert "a bug" in caplog.text


def test_a_photo_over_the_limit_gets_the_scan_page_saying_so(client):
    """Without the page's script (which sends a large photo smaller): the scan page again with what
    to do, as for every other photo it cannot check, not the bare 413 page."""
    too_big = b"\xff\xd8" + b"\0" * (10 * 1024 * 1024 + 10)
    scan = client.get("/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', scan).group(1)
    r = client.post("/check", data={"csrf_token": token, "image": (io.BytesIO(too_big), "big.jpg")},
                    content_type="multipart/form-data", headers={"Accept-Language": "en", "Accept": "text/html"})
    html = r.get_data(as_text=True)
    assert r.status_code == 413 and 'id="photo-form"' in html
    assert "This photo's file is too large to send" in html
