"""The producer portal's token, batch and import pages as a reviewer found them: a reload after
creating a token, a recalled batch's reason and date, the serials form after a refused count, and
the import preview's plurals and repeated rows. Through the Flask test client, CSRF on."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, timezone

import pytest
from babel.dates import format_date
from sqlalchemy import select

from registry.models import ApiToken
from registry.services import SYSTEM, Registry

from tests.app.portal_support import client_login, csrf_of, make_user
from tests.conftest import GTIN, FixedClock, batch_data

ENGLISH = {"Accept-Language": "en"}
CSV_HEADER = ("gtin,lot,product_name,brand,category,facility_name,facility_address,facility_gln,facility_country,"
              "production_date,expiry_date,quantity,certification_scheme,certification_id\n")


@pytest.fixture
def producer(client, session, world):
    """``client`` logged in as staff of ``world``'s producer."""
    make_user(session, "producer1", "producer", world.producer_id)
    client_login(client, "producer1")
    return world


def _tokens(session, producer_id: str) -> int:
    count = len(session.execute(select(ApiToken).where(ApiToken.producer_id == producer_id)).scalars().all())
    session.rollback()  # SQLite: every transaction takes the write lock
    return count


# -- API tokens ------------------------------------------------------------------------------------

def _session_cookie(app, response) -> dict:
    """What the session cookie the response sets holds (Flask signs it; anyone can read it)."""
    name = app.config["SESSION_COOKIE_NAME"]
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith(name + "="))
    return app.session_interface.get_signing_serializer(app).loads(cookie.split(";")[0].split("=", 1)[1])


def test_a_created_token_never_travels_readable_in_the_session_cookie(app, client, session, producer):
    """The cookie between the POST and the page that shows the token is signed, not encrypted: it
    had held the token in clear, for every proxy and log on the way to read."""
    page = client.get("/portal/producer/tokens").get_data(as_text=True)
    created = client.post("/portal/producer/tokens", data={"csrf_token": csrf_of(page), "label": "erp", "days": "30"})
    carried = _session_cookie(app, created)["token_created"]
    shown = client.get(created.headers["Location"]).get_data(as_text=True)
    token = re.search(r'id="token-value">([^<]+)<', shown).group(1)
    assert token.startswith("pov_") and token not in str(carried) and carried["token"] != token


def test_an_altered_sealed_token_is_not_shown(app, client, session, producer):
    page = client.get("/portal/producer/tokens").get_data(as_text=True)
    created = client.post("/portal/producer/tokens", data={"csrf_token": csrf_of(page), "label": "erp", "days": "30"})
    with client.session_transaction() as cookie:
        sealed = cookie["token_created"]["token"]
        cookie["token_created"] = {**cookie["token_created"], "token": sealed[:20] + ("A" if sealed[20] != "A" else "B")
                                   + sealed[21:]}
    shown = client.get(created.headers["Location"]).get_data(as_text=True)
    assert "token-value" not in shown and 'data-token="' in shown


def test_a_created_token_is_shown_once_after_a_redirect_and_a_reload_creates_no_other(client, session, producer):
    before = _tokens(session, producer.producer_id)
    page = client.get("/portal/producer/tokens").get_data(as_text=True)
    created = client.post("/portal/producer/tokens", data={"csrf_token": csrf_of(page), "label": "erp", "days": "30"})
    assert created.status_code == 303  # POST/redirect/GET: the answer to the POST is no page to reload
    assert created.headers["Location"].startswith("/portal/producer/tokens")
    assert "token-value" not in created.get_data(as_text=True)

    shown = client.get(created.headers["Location"])
    assert shown.status_code == 200 and shown.headers["Cache-Control"] == "no-store"
    token = re.search(r'id="token-value">([^<]+)<', shown.get_data(as_text=True)).group(1)
    assert client.get("/api/v1/tokens", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert _tokens(session, producer.producer_id) == before + 1

    reloaded = client.get(created.headers["Location"]).get_data(as_text=True)  # the reload: a GET, once more
    assert "token-value" not in reloaded and token not in reloaded  # shown once
    assert re.search(r'<tr data-token="\d+">\s*<td data-label="#">\d+</td>\s*<td data-label="[^"]+">erp</td>', reloaded)
    assert _tokens(session, producer.producer_id) == before + 1


def test_a_refused_token_form_keeps_what_was_typed_and_creates_nothing(client, session, producer):
    before = _tokens(session, producer.producer_id)
    page = client.get("/portal/producer/tokens").get_data(as_text=True)
    refused = client.post("/portal/producer/tokens", data={"csrf_token": csrf_of(page), "label": "kho", "days": "0"})
    assert refused.status_code == 422
    html = refused.get_data(as_text=True)
    assert 'value="kho"' in html and 'id="days-error"' in html and "token-value" not in html
    assert _tokens(session, producer.producer_id) == before


# -- a recalled batch --------------------------------------------------------------------------------

def test_a_recalled_batchs_page_says_why_and_when_in_vietnam_time(app, client, registry, session, producer):
    """Recalled at 20:30 UTC: already the next day in Vietnam (UTC+7), the day the page gives."""
    registry.register_batch(SYSTEM, batch_data(lot="LOT-R"), producer_id=producer.producer_id)
    registry.register_batch(SYSTEM, batch_data(lot="LOT-A"), producer_id=producer.producer_id)
    yesterday = date.today() - timedelta(days=1)
    clock = FixedClock(datetime.combine(yesterday, time(20, 30), tzinfo=timezone.utc))
    recalling = Registry(session, keystore=app.extensions["keystore"], base_url=app.config["BASE_URL"], clock=clock)
    recalling.recall(SYSTEM, GTIN, "LOT-R", reason="Nhiễm khuẩn <Salmonella> & bao bì hở")
    session.commit()

    html = client.get(f"/portal/producer/batches/{GTIN}/LOT-R").get_data(as_text=True)
    details = re.search(r'<p class="notice error-notice" id="recall-details">(.*?)</p>', html, re.S).group(1)
    today = date.today()
    vietnam_day = f"{today.day} tháng {today.month} năm {today.year}"
    assert details == (f"Đã thu hồi ngày {vietnam_day}. Lý do người mua được xem: "
                       "Nhiễm khuẩn &lt;Salmonella&gt; &amp; bao bì hở")
    english = client.get(f"/portal/producer/batches/{GTIN}/LOT-R", headers=ENGLISH).get_data(as_text=True)
    assert (f"Recalled on {format_date(date.today(), format='long', locale='en')}. "
            "The reason shoppers are shown: Nhiễm khuẩn &lt;Salmonella&gt;") in english
    assert format_date(yesterday, format="long", locale="en") not in english  # not the day in UTC
    assert 'id="recall-details"' not in client.get(f"/portal/producer/batches/{GTIN}/LOT-A").get_data(as_text=True)
    assert "every label printed from here verifies as recalled" in english  # before anyone prints them
    assert 'id="labels-recalled"' not in client.get(f"/portal/producer/batches/{GTIN}/LOT-A").get_data(as_text=True)


# -- the serials form ----------------------------------------------------------------------------------

@pytest.mark.parametrize("typed", ["100001", "abc", "0"])
def test_a_refused_count_of_serials_stays_in_the_form_with_why_beside_it(client, registry, session, producer, typed):
    registry.register_batch(SYSTEM, batch_data(), producer_id=producer.producer_id)
    session.commit()
    url = f"/portal/producer/batches/{GTIN}/LOT-1"
    page = client.get(url).get_data(as_text=True)
    assert re.search(r'<input id="count" name="count" type="number"[^>]* value="10"', page)  # the default
    refused = client.post(url + "/serials", data={"csrf_token": csrf_of(page), "count": typed})
    assert refused.status_code == 422
    html = refused.get_data(as_text=True)
    field = re.search(r'<input id="count"[^>]*>', html).group(0)
    assert f'value="{typed}"' in field and 'aria-invalid="true"' in field
    assert '<p class="field-error" id="count-error">Nhập số lượng sê-ri từ 1 đến 100.000.</p>' in html
    session.expire_all()
    assert registry.batch(GTIN, "LOT-1").serial_count == 0


def test_issuing_more_serials_than_the_declared_quantity_is_pointed_out(client, registry, session, producer):
    """A batch declared as 100 units took 100,001 serials without a word (a slip of a digit prints
    a thousand times the labels); spares are allowed, and said."""
    registry.register_batch(SYSTEM, batch_data(), producer_id=producer.producer_id)  # quantity 100
    session.commit()
    url = f"/portal/producer/batches/{GTIN}/LOT-1"
    token = csrf_of(client.get(url).get_data(as_text=True))
    within = client.post(url + "/serials", data={"csrf_token": token, "count": "100"}, follow_redirects=True)
    assert "nhiều hơn" not in within.get_data(as_text=True)
    beyond = client.post(url + "/serials", data={"csrf_token": token, "count": "5"}, headers=ENGLISH,
                         follow_redirects=True).get_data(as_text=True)
    assert "The batch now has 105 serials, more than the 100 units its record declares." in beyond
    session.expire_all()
    assert registry.batch(GTIN, "LOT-1").serial_count == 105  # issued all the same


def test_issued_serials_are_counted_in_good_english(client, registry, session, producer):
    registry.register_batch(SYSTEM, batch_data(), producer_id=producer.producer_id)
    session.commit()
    url = f"/portal/producer/batches/{GTIN}/LOT-1"
    token = csrf_of(client.get(url).get_data(as_text=True))
    one = client.post(url + "/serials", data={"csrf_token": token, "count": "1"}, headers=ENGLISH,
                      follow_redirects=True)
    assert "1 serial issued." in one.get_data(as_text=True)
    assert "one label per serial (1 label)." in one.get_data(as_text=True)  # the label sheet's count too
    two = client.post(url + "/serials", data={"csrf_token": token, "count": "2"}, follow_redirects=True)
    assert "Đã cấp 2 số sê-ri." in two.get_data(as_text=True) and "(3 nhãn)" in two.get_data(as_text=True)
    assert "(3 labels)." in client.get(url, headers=ENGLISH).get_data(as_text=True)
    many = client.post(url + "/serials", data={"csrf_token": token, "count": "1200"}, follow_redirects=True)
    assert "Đã cấp 1.200 số sê-ri." in many.get_data(as_text=True)  # grouped as the language writes it
    more = client.post(url + "/serials", data={"csrf_token": token, "count": "1000"}, headers=ENGLISH,
                       follow_redirects=True)
    assert "1,000 serials issued." in more.get_data(as_text=True)


# -- the import preview ----------------------------------------------------------------------------------

def _row(lot: str, *, gtin: str = GTIN, production_date: str = "2026-01-01") -> str:
    return f"{gtin},{lot},Trà,,,Xưởng,,,VN,{production_date},,,,\n"


def _preview(client, csv_text: str, **headers):
    token = csrf_of(client.get("/portal/producer/import").get_data(as_text=True))
    return client.post("/portal/producer/import", data={"csrf_token": token, "csv_text": csv_text}, headers=headers)


def _problems(html: str, line: int) -> list[tuple[str, str]]:
    row = re.search(rf'<tr class="row-\w+" data-line="{line}">.*?</tr>', html, re.S).group(0)
    return re.findall(r'<li><span class="mono">(\w+)</span>: ([^<]*)</li>', row)


def test_a_one_line_file_is_counted_in_good_english_and_vietnamese(client, registry, session, producer):
    english = _preview(client, CSV_HEADER + _row("ONE"), **ENGLISH).get_data(as_text=True)
    assert "The file's only line is correct. Nothing is registered until you import it." in english
    assert ">Import 1 batch</button>" in english and "1 lines" not in english
    vietnamese = _preview(client, CSV_HEADER + _row("ONE")).get_data(as_text=True)
    assert "Không dòng nào có lỗi (1 dòng)." in vietnamese and ">Nhập 1 lô hàng</button>" in vietnamese
    many = _preview(client, CSV_HEADER + _row("ONE") + _row("TWO"), **ENGLISH).get_data(as_text=True)
    assert "All 2 lines are correct. Nothing is registered until you import them." in many
    assert ">Import 2 batches</button>" in many

    token = csrf_of(english)
    done = client.post("/portal/producer/import", data={"csrf_token": token, "csv_text": CSV_HEADER + _row("ONE"),
                                                        "confirm": "1"}, headers=ENGLISH, follow_redirects=True)
    assert "1 batch imported." in done.get_data(as_text=True)
    assert registry.batch(GTIN, "ONE").product_name == "Trà"


def test_a_row_repeating_an_earlier_row_of_the_file_says_which(client, registry, session, producer):
    """Nothing is registered while previewing: a repeat is named as one, never "already
    registered" (the earlier row's savepoint had made it look so). The GTIN written with 13 digits
    is the same GTIN."""
    registry.register_batch(SYSTEM, batch_data(lot="OLD"), producer_id=producer.producer_id)
    session.commit()
    csv_text = CSV_HEADER + (_row("KE-01")                       # line 2
                             + _row("KE-01", gtin=GTIN[1:])      # line 3: line 2 again
                             + _row("KE-02", production_date="x")  # line 4: wrong on its own
                             + _row("KE-02")                     # line 5: line 4 again
                             + _row("OLD")                       # line 6: in the registry already
                             + _row("OLD"))                      # line 7: line 6 again
    response = _preview(client, csv_text)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert _problems(html, 2) == []
    assert _problems(html, 3) == [("lot", "Mã GTIN và số lô này trùng với dòng 2 của tệp.")]
    assert [column for column, _ in _problems(html, 4)] == ["production_date"]
    assert _problems(html, 5) == [("lot", "Mã GTIN và số lô này trùng với dòng 4 của tệp.")]
    assert _problems(html, 6) == [("lot", "Mã GTIN và số lô này đã được đăng ký.")]
    assert _problems(html, 7) == [("lot", "Mã GTIN và số lô này trùng với dòng 6 của tệp.")]
    assert "5 trong 6 dòng có lỗi." in html

    english = _preview(client, CSV_HEADER + _row("KE-01") + _row("KE-01"), **ENGLISH).get_data(as_text=True)
    assert _problems(english, 3) == [("lot", "This GTIN and lot repeat line 2 of the file.")]
    assert "1 line of 2 has errors." in english


@pytest.mark.parametrize("query, vietnamese", [
    ("stock=a9-999", "không in loại giấy nhãn này"),
    ("part=5", "không có phần đó"),
])
def test_a_label_sheet_address_that_names_nothing_is_explained_in_the_pages_language(client, registry, session,
                                                                                      producer, query, vietnamese):
    """A label stock or part the batch page never offered (an edited address): the problem page had
    said the registry's English message on a Vietnamese page."""
    registry.register_batch(SYSTEM, batch_data(lot="LOT-L"), producer_id=producer.producer_id)
    registry.issue_serials(SYSTEM, GTIN, "LOT-L", 3)
    session.commit()
    answer = client.get(f"/portal/producer/batches/{GTIN}/LOT-L/labels.pdf?{query}")
    html = answer.get_data(as_text=True)
    assert answer.status_code == 422 and vietnamese in html, html[-1500:]


def test_the_batch_page_shows_everything_the_record_signs_and_counts_in_the_pages_language(
        client, registry, session, producer):
    """The record's category, GLN, country and certifications had been left off the batch page
    (shoppers saw them), and counts read 100000 on a Vietnamese page."""
    data = batch_data(lot="LOT-F", quantity=100000,
                      certifications=[{"scheme": "VietGAP", "id": "VG-1"}, {"scheme": "HACCP", "id": "H-9"}])
    data["facility"] = {**data["facility"], "gln": "8936000000011"}
    registry.register_batch(SYSTEM, data, producer_id=producer.producer_id)
    session.commit()
    html = client.get(f"/portal/producer/batches/{GTIN}/LOT-F").get_data(as_text=True)
    record = html[html.index('id="record"'):html.index("</section>", html.index('id="record"'))]
    assert "<dd>Coffee</dd>" in record and '<dd class="mono">8936000000011</dd>' in record
    assert "<dd>Việt Nam</dd>" in record and "<dd>VietGAP (VG-1), HACCP (H-9)</dd>" in record
    assert "<dd>100.000</dd>" in record
    english = client.get(f"/portal/producer/batches/{GTIN}/LOT-F", headers=ENGLISH).get_data(as_text=True)
    assert "<dd>100,000</dd>" in english and "<dd>Vietnam</dd>" in english


def test_a_producer_finds_a_batch_among_many_by_lot_gtin_or_product(client, registry, session, producer):
    """Pages of 50 and an 'Older' link had been the only way through thousands of lots."""
    for i in range(60):
        data = batch_data(lot=f"L{i:03d}%")
        data["product"] = {**data["product"], "name": "Mật ong rừng" if i == 7 else "Cà phê rang xay"}
        registry.register_batch(SYSTEM, data, producer_id=producer.producer_id)
    session.commit()

    def lots(**query) -> list[str]:
        html = client.get("/portal/producer/", query_string=query).get_data(as_text=True)
        return re.findall(r'<tr data-gtin="\d+" data-lot="([^"]+)">', html)

    assert len(lots()) == 50  # a page
    assert lots(q="l042") == ["L042%"]  # case ignored
    assert lots(q="Mật ong") == ["L007%"]
    assert lots(q="%") and len(lots(q="%")) == 50  # '%' is a character of the lots, not a wildcard
    assert lots(q="2%") == ["L052%", "L042%", "L032%", "L022%", "L012%", "L002%"]
    assert len(lots(q=GTIN.lstrip("0"))) == 50
    empty = client.get("/portal/producer/", query_string={"q": "zzz"}, headers=ENGLISH).get_data(as_text=True)
    assert "No batch matches this search." in empty and 'value="zzz"' in empty


def test_a_token_label_too_long_is_said_not_cut_short(client, session, producer):
    before = _tokens(session, producer.producer_id)
    page = client.get("/portal/producer/tokens").get_data(as_text=True)
    refused = client.post("/portal/producer/tokens", data={"csrf_token": csrf_of(page), "label": "k" * 101, "days": "30"})
    assert refused.status_code == 422
    html = refused.get_data(as_text=True)
    assert f'value="{"k" * 101}"' in html and "Nội dung quá dài." in html and "token-value" not in html
    assert _tokens(session, producer.producer_id) == before
