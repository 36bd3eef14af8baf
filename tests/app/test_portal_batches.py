"""The producer's batch pages: what a batch's badge says, through the Flask test client."""

from __future__ import annotations

import io
import re
from datetime import date, timedelta
from html import unescape as html_unescape

import pytest

from registry.errors import NotFound
from registry.services import SYSTEM
from verification.localtime import vietnam_date

from tests.app.portal_support import client_login, csrf_of, make_user
from tests.conftest import GTIN, batch_data


def _badges(html: str, lot: str) -> list[tuple[str, str]]:
    """The badges in the batch list's row of ``lot``."""
    row = re.search(rf'<tr data-gtin="{GTIN}" data-lot="{lot}">.*?</tr>', html, re.S).group(0)
    return re.findall(r'<span class="badge badge-(\w+)">([^<]*)</span>', row)


CSV_HEADER = ("gtin,lot,product_name,brand,category,facility_name,facility_address,facility_gln,facility_country,"
              "production_date,expiry_date,quantity,certification_scheme,certification_id\n")


def _log_in_as_producer(client, session, world) -> None:
    """Producer staff of ``world``'s producer, logged in on ``client``."""
    make_user(session, "producer1", "producer", world.producer_id)
    session.commit()
    client_login(client, "producer1")


def test_an_active_batch_past_its_expiry_is_marked_expired_and_a_recalled_one_stays_recalled(
        client, registry, session, world):
    make_user(session, "producer1", "producer", world.producer_id)
    today = vietnam_date()  # expiry dates are dates in Vietnam (verification.localtime)
    for lot, expiry in (("FRESH", today + timedelta(days=30)), ("LAST-DAY", today),
                        ("PAST", today - timedelta(days=1)), ("PAST-RECALLED", today - timedelta(days=1))):
        registry.register_batch(SYSTEM, batch_data(lot=lot, expiry=expiry), producer_id=world.producer_id)
    registry.recall(SYSTEM, GTIN, "PAST-RECALLED", reason="bao bì lỗi")
    session.commit()
    client_login(client, "producer1")

    html = client.get("/portal/producer/").get_data(as_text=True)
    assert _badges(html, "FRESH") == [("active", "còn hiệu lực")]
    assert _badges(html, "LAST-DAY") == [("active", "còn hiệu lực")]  # usable through its expiry date
    assert _badges(html, "PAST") == [("expired", "đã hết hạn")]  # not "active" beside it
    assert _badges(html, "PAST-RECALLED") == [("recalled", "đã thu hồi")]

    heading = re.search(r"<h1>.*?</h1>", client.get(f"/portal/producer/batches/{GTIN}/PAST").get_data(as_text=True),
                        re.S).group(0)
    assert 'badge-expired">đã hết hạn<' in heading and "badge-active" not in heading
    heading = re.search(r"<h1>.*?</h1>", client.get(f"/portal/producer/batches/{GTIN}/FRESH").get_data(as_text=True),
                        re.S).group(0)
    assert "badge-expired" not in heading


def test_every_field_error_of_the_batch_form_is_beside_its_field(client, session, world):
    """The facility's country among other bad fields: each one marked, the country included."""
    _log_in_as_producer(client, session, world)
    token = csrf_of(client.get("/portal/producer/batches/new").get_data(as_text=True))
    response = client.post("/portal/producer/batches/new", data={
        "csrf_token": token, "gtin": "12345", "lot": "L1", "product.name": "Trà", "facility.name": "Xưởng",
        "facility.country": "V1", "production_date": "2026-01-01", "quantity": "0"})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    for name in ("gtin", "facility-country", "quantity"):
        assert f'id="f-{name}" name=' in html and f'aria-describedby="f-{name}-error"' in html, name
    assert 'id="f-facility-country-error">Nhập mã quốc gia hai chữ cái, ví dụ VN.' in html  # the catalogue's words


def test_a_lot_with_accents_is_refused_saying_so(client, session, world):
    """Vietnamese producers type lots such as "LÔ-01": the message beside the field says that the
    accent (or a space) is what a code cannot carry."""
    _log_in_as_producer(client, session, world)
    token = csrf_of(client.get("/portal/producer/batches/new").get_data(as_text=True))
    response = client.post("/portal/producer/batches/new", data={
        "csrf_token": token, "gtin": GTIN, "lot": "LÔ-01", "product.name": "Trà", "facility.name": "Xưởng",
        "production_date": "2026-01-01"})
    assert response.status_code == 422
    assert ('id="f-lot-error">Số lô gồm 1 đến 20 ký tự: chữ cái không dấu và không có khoảng trắng'
            in response.get_data(as_text=True))


def test_the_country_is_chosen_by_name_and_must_be_a_real_one(client, session, world):
    """A two-letter text field had kept "Vi" of "Việt Nam": the US Virgin Islands, signed into the
    origin record. The form offers the countries by name in the page's language, Viet Nam chosen
    and first; a code that is no country (sent by hand) is refused beside the field."""
    _log_in_as_producer(client, session, world)
    page = client.get("/portal/producer/batches/new").get_data(as_text=True)
    select = re.search(r'<select id="f-facility-country" name="facility.country".*?</select>', page, re.S).group(0)
    options = re.findall(r'<option value="(\w*)"( selected)?>([^<]*)</option>', select)
    assert options[0] == ("", "", "—")  # the country is optional
    assert options[1] == ("VN", " selected", "Việt Nam") and ("VI", "", "Quần đảo Virgin thuộc Hoa Kỳ") in options
    assert len(options) == 1 + 249 and [o for o in options if o[1]] == [options[1]]
    english = client.get("/portal/producer/batches/new", headers={"Accept-Language": "en"})
    assert '<option value="JP">Japan</option>' in english.get_data(as_text=True)
    form = {"csrf_token": csrf_of(page), "lot": "L1", "product.name": "Trà", "facility.name": "Xưởng",
            "production_date": "2026-01-01"}
    refused = client.post("/portal/producer/batches/new", data={**form, "gtin": GTIN, "facility.country": "QQ"})
    assert refused.status_code == 422
    assert 'id="f-facility-country-error">Nhập mã quốc gia hai chữ cái, ví dụ VN.' in refused.get_data(as_text=True)
    assert '<option value="QQ" selected>QQ</option>' in refused.get_data(as_text=True)  # what was sent stays
    done = client.post("/portal/producer/batches/new", data={**form, "gtin": GTIN, "facility.country": "JP",
                                                              "quantity": "1.200"})
    assert done.status_code in (302, 303)
    body = client.get(f"/api/v1/batches/{GTIN}/L1").get_json()
    assert body["record"]["facility"]["country"] == "JP"
    assert body["record"]["quantity"] == 1200  # thousands written as in Vietnam, as the CSV import reads them


def test_the_api_refuses_a_country_code_that_is_no_country(client, world):
    data = {"gtin": GTIN, "lot": "L2", "product": {"name": "Trà"}, "facility": {"name": "Xưởng", "country": "QQ"},
            "production_date": "2026-01-01"}
    response = client.post("/api/v1/batches", json=data, headers=world.auth("producer"))
    assert response.status_code == 422 and response.get_json()["error"]["code"] == "BAD_COUNTRY"


def test_a_batch_signed_by_a_revoked_key_says_so(client, registry, session, world):
    """After a revocation the batch page had gone on offering labels with no word that their codes
    now read 'suspicious' to shoppers."""
    registry.register_batch(SYSTEM, batch_data(), producer_id=world.producer_id)
    _log_in_as_producer(client, session, world)
    page = f"/portal/producer/batches/{GTIN}/LOT-1"
    assert 'id="key-revoked"' not in client.get(page).get_data(as_text=True)
    registry.revoke_key(SYSTEM, world.kid, compromised_at=None)
    session.commit()
    html = client.get(page).get_data(as_text=True)
    assert 'id="key-revoked"' in html and f"Khóa đã ký lô hàng này ({world.kid}) đã bị thu hồi" in html
    english = client.get(page, headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert f"The key that signed this batch ({world.kid}) has been revoked" in english


def test_the_import_preview_names_the_files_columns_in_the_pages_language(client, session, world):
    _log_in_as_producer(client, session, world)
    page = client.get("/portal/producer/import").get_data(as_text=True)
    csv_text = CSV_HEADER + "12345,L1,Trà,,,Xưởng,,,V1,2026-01-01,,,,\n"
    response = client.post("/portal/producer/import", content_type="multipart/form-data", data={
        "csrf_token": csrf_of(page), "file": (io.BytesIO(csv_text.encode()), "batches.csv")})
    row = re.search(r'<tr class="row-error" data-line="2">.*?</tr>', response.get_data(as_text=True), re.S).group(0)
    problems = re.findall(r'<li><span class="mono">(\w+)</span>: ([^<]*)</li>', row)
    assert [column for column, _ in problems] == ["gtin", "facility_country"]
    assert all("must" not in text and "got" not in text for _, text in problems)  # no English detail beside it


def test_a_file_whose_first_line_is_one_enormous_cell_is_refused_on_the_import_page(client, session, world):
    """Python's csv reader refuses a cell over 128 KiB; on the header line that had been a 500."""
    _log_in_as_producer(client, session, world)
    page = client.get("/portal/producer/import").get_data(as_text=True)
    for raw in (b"x" * 200_000 + b"\n", CSV_HEADER.encode() + b'"' + b"y" * 200_000 + b'"\n'):
        response = client.post("/portal/producer/import", content_type="multipart/form-data", data={
            "csrf_token": csrf_of(page), "file": (io.BytesIO(raw), "batches.csv")})
        html = response.get_data(as_text=True)
        assert response.status_code == 422, html[:300]
        assert '<p class="notice error-notice" role="alert" id="file-error">' in html
        assert "Tệp không phải là tệp CSV mã hóa UTF-8." in html, html


def test_a_certification_without_its_number_is_marked_on_the_form_and_in_the_import_preview(
        client, registry, session, world):
    """Scheme VietGAP, number empty: had been signed and shown to shoppers as "VietGAP ()"."""
    _log_in_as_producer(client, session, world)
    token = csrf_of(client.get("/portal/producer/batches/new").get_data(as_text=True))
    response = client.post("/portal/producer/batches/new", data={
        "csrf_token": token, "gtin": GTIN, "lot": "L1", "product.name": "Trà", "facility.name": "Xưởng",
        "production_date": "2026-01-01", "certification.scheme": "VietGAP", "certification.id": ""})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert 'aria-describedby="f-certification-id-1-error"' in html
    assert 'id="f-certification-id-1-error">Vui lòng điền mục này.' in html
    page = client.get("/portal/producer/import").get_data(as_text=True)
    csv_text = CSV_HEADER + f"{GTIN},L2,Trà,,,Xưởng,,,VN,2026-01-01,,,OCOP,\n"
    response = client.post("/portal/producer/import", content_type="multipart/form-data", data={
        "csrf_token": csrf_of(page), "file": (io.BytesIO(csv_text.encode()), "batches.csv")})
    assert response.status_code == 422
    row = re.search(r'<tr class="row-error" data-line="2">.*?</tr>', response.get_data(as_text=True), re.S).group(0)
    assert re.findall(r'<li><span class="mono">(\w+)</span>: ([^<]*)</li>', row) == [
        ("certification_id", "Vui lòng điền mục này.")]
    session.expire_all()
    with pytest.raises(NotFound):
        registry.batch(GTIN, "L1")


def test_a_production_date_to_come_says_the_date_cannot_be_in_the_future(client, session, world):
    _log_in_as_producer(client, session, world)
    token = csrf_of(client.get("/portal/producer/batches/new").get_data(as_text=True))
    later = (date.today() + timedelta(days=5)).isoformat()
    response = client.post("/portal/producer/batches/new", data={
        "csrf_token": token, "gtin": GTIN, "lot": "L1", "product.name": "Trà", "facility.name": "Xưởng",
        "production_date": later})
    assert response.status_code == 422
    assert 'id="f-production_date-error">Ngày không thể ở trong tương lai.' in response.get_data(as_text=True)


def test_an_import_that_meets_a_batch_registered_meanwhile_names_its_line_in_the_pages_language(
        client, registry, session, world):
    """Previewed, then registered in another tab before the import is confirmed: nothing is
    imported, and the notice names the file's line as the preview does, in Vietnamese only (it
    had said '(row 1: batch ... is already registered)' beside the Vietnamese)."""
    _log_in_as_producer(client, session, world)
    page = client.get("/portal/producer/import").get_data(as_text=True)
    csv_text = CSV_HEADER + (f"{GTIN},KE-01,Trà,,,Xưởng,,,VN,2026-01-01,,,,\n"
                             f"{GTIN},KE-02,Trà,,,Xưởng,,,VN,2026-01-01,,,,\n")
    preview = client.post("/portal/producer/import", data={"csrf_token": csrf_of(page), "csv_text": csv_text})
    assert preview.status_code == 200 and 'data-line="3"' in preview.get_data(as_text=True)
    registry.register_batch(SYSTEM, batch_data(lot="KE-02"), producer_id=world.producer_id)  # another tab
    session.commit()
    confirmed = client.post("/portal/producer/import", data={"csrf_token": csrf_of(page), "csv_text": csv_text,
                                                            "confirm": "1"}, follow_redirects=True)
    html = confirmed.get_data(as_text=True)
    assert "Không có gì được nhập: dòng 3: Mã GTIN và số lô này đã được đăng ký." in html
    assert "row " not in html and "already registered" not in html
    with pytest.raises(NotFound):  # all or nothing: the line before it was not kept either
        registry.batch(GTIN, "KE-01")


def test_label_stocks_are_named_in_the_pages_language(client, registry, session, world):
    registry.register_batch(SYSTEM, batch_data(), producer_id=world.producer_id)
    _log_in_as_producer(client, session, world)
    html = client.get(f"/portal/producer/batches/{GTIN}/LOT-1").get_data(as_text=True)
    assert "70 x 37 mm, 3 x 8 (Avery 3474), tràn lề — 24 nhãn mỗi tờ" in html
    assert "edge to edge" not in html
    english = client.get(f"/portal/producer/batches/{GTIN}/LOT-1", headers={"Accept-Language": "en"})
    assert "70 x 37 mm, 3 x 8 (Avery 3474), edge to edge" in english.get_data(as_text=True)


def test_a_missing_batch_is_said_in_the_pages_language(client, session, world):
    """The domain's English words ('no batch ... / NOPE') stay as a technical detail under the
    catalogue's, which the page had shown alone."""
    _log_in_as_producer(client, session, world)
    response = client.get(f"/portal/producer/batches/{GTIN}/NOPE")
    html = response.get_data(as_text=True)
    assert response.status_code == 404 and "<strong>Không có lô hàng này (GTIN và số lô).</strong>" in html
    assert re.search(r'<details class="small"><summary>Chi tiết kỹ thuật</summary><p lang="en">no batch '
                     rf'{GTIN} / NOPE</p></details>', html)


def test_a_batch_larger_than_one_sheet_is_printed_in_parts(client, registry, session, world):
    """More codes than one PDF takes (10,000): the API refuses the whole batch at once and names the
    parts to ask for; a part is served; the portal offers the parts."""
    from registry.labels import MAX_LABELS_PER_SHEET

    registry.register_batch(SYSTEM, batch_data(lot="BIG"), producer_id=world.producer_id)
    list(registry.issue_serials(SYSTEM, GTIN, "BIG", MAX_LABELS_PER_SHEET + 3))
    session.commit()
    auth = world.auth("producer")
    whole = client.get(f"/api/v1/batches/{GTIN}/BIG/labels", headers=auth)
    assert whole.status_code == 422 and whole.get_json()["error"]["code"] == "TOO_MANY_LABELS"
    assert "offset and limit" in whole.get_json()["error"]["message"]
    last = client.get(f"/api/v1/batches/{GTIN}/BIG/labels?offset={MAX_LABELS_PER_SHEET}&limit=10", headers=auth)
    assert last.status_code == 200 and last.data.startswith(b"%PDF")
    past = client.get(f"/api/v1/batches/{GTIN}/BIG/labels?offset={MAX_LABELS_PER_SHEET + 3}&limit=10", headers=auth)
    assert past.status_code == 422 and past.get_json()["error"]["code"] == "BAD_RANGE"
    too_many = client.get(f"/api/v1/batches/{GTIN}/BIG/labels?limit={MAX_LABELS_PER_SHEET + 1}", headers=auth)
    assert too_many.status_code == 422

    _log_in_as_producer(client, session, world)
    page = client.get(f"/portal/producer/batches/{GTIN}/BIG").get_data(as_text=True)
    assert re.findall(r'<option value="(\d+)">([^<]+)</option>', page) == [("1", "1–10.000"), ("2", "10.001–10.003")]
    part = client.get(f"/portal/producer/batches/{GTIN}/BIG/labels.pdf?part=2")
    assert part.status_code == 200 and part.data.startswith(b"%PDF") and "part2" in part.headers["Content-Disposition"]
    assert client.get(f"/portal/producer/batches/{GTIN}/BIG/labels.pdf").status_code == 422  # not all at once


def _form_fields(html: str, form_id: str = "correct-form") -> dict[str, list[str]]:
    """Every input of the correction form (or another) by name, with its values in order (repeated names: a list)."""
    form = re.search(rf'<form[^>]*id="{form_id}".*?</form>', html, re.S).group(0)
    found: dict[str, list[str]] = {}
    for tag in re.findall(r"<input[^>]*>", form):
        name = re.search(r'name="([^"]+)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if name:
            found.setdefault(name.group(1), []).append(value.group(1) if value else "")
    for name, selected in re.findall(r'<select[^>]*name="([^"]+)".*?<option value="([^"]*)" selected', form, re.S):
        found[name] = [selected]
    return found


def test_the_correction_form_starts_from_the_record_and_publishes_a_new_version(client, registry, session, world):
    """The producer corrects a misspelt product name and adds a certification: the form holds the
    current record (every certification), the batch page then shows the versions with the reason,
    and the shopper's verdict page says when the record was corrected."""
    batch = registry.register_batch(SYSTEM, batch_data(certifications=[{"scheme": "VietGAP", "id": "VG-1"},
                                                                       {"scheme": "OCOP", "id": "3-sao"}]),
                                    producer_id=world.producer_id)
    v1_index = batch.log_index
    _log_in_as_producer(client, session, world)
    page = client.get(f"/portal/producer/batches/{GTIN}/LOT-1")
    assert f'href="/portal/producer/batches/{GTIN}/LOT-1/correct"' in page.get_data(as_text=True)
    html = client.get(f"/portal/producer/batches/{GTIN}/LOT-1/correct").get_data(as_text=True)
    fields = _form_fields(html)
    assert fields["product.name"] == ["Cà phê rang xay"] and fields["facility.country"] == ["VN"]
    assert fields["certification.scheme"] == ["VietGAP", "OCOP", ""] and fields["certification.id"] == ["VG-1", "3-sao", ""]
    assert re.search(r'<input id="f-expiry_date" name="expiry_date" type="date" value="[\d-]+"'
                     r' aria-describedby="f-expiry_date-hint" readonly>', html)  # why, read with the field
    assert "gtin" not in fields and "lot" not in fields  # shown, not sent

    form = {k: v for k, v in fields.items()}
    form.update({"csrf_token": [csrf_of(html)], "product.name": ["Cà phê hạt Robusta"],
                 "certification.scheme": ["VietGAP", "", "HACCP"], "certification.id": ["VG-1", "", "H-9"],
                 "reason": ["Tên sản phẩm in sai <b>chính tả</b>"]})
    response = client.post(f"/portal/producer/batches/{GTIN}/LOT-1/correct", data=form)
    assert response.status_code == 303 and response.headers["Location"].endswith(f"/batches/{GTIN}/LOT-1#record")
    session.expire_all()
    record = registry.batch(GTIN, "LOT-1").record
    assert record["version"] == 2 and record["product"]["name"] == "Cà phê hạt Robusta"
    assert record["certifications"] == [{"scheme": "VietGAP", "id": "VG-1"}, {"scheme": "HACCP", "id": "H-9"}]
    assert record["supersedes"]["index"] == v1_index
    session.close()  # SQLite: the app writes next

    page = client.get(f"/portal/producer/batches/{GTIN}/LOT-1").get_data(as_text=True)
    assert "Đã đính chính hồ sơ: phiên bản 2 đã được ký" in page
    versions = re.search(r'<h3 id="versions">.*?</table>', page, re.S).group(0)
    rows = re.findall(r"<tr.*?</tr>", versions, re.S)[1:]
    assert len(rows) == 2 and f"#{v1_index}<" in rows[0] and "(hiện tại)" in rows[1]
    assert "Tên sản phẩm in sai &lt;b&gt;chính tả&lt;/b&gt;" in rows[1]  # escaped

    unit = client.get(f"/01/{GTIN}/10/LOT-1").get_data(as_text=True)
    assert 'id="record-corrected"' in unit and "bởi nhà sản xuất, ngày" in unit and "Cà phê hạt Robusta" in unit
    english = client.get(f"/01/{GTIN}/10/LOT-1", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Record corrected" in english and "by the producer on" in english


def test_the_correction_forms_objections_are_beside_their_fields(client, registry, session, world):
    registry.register_batch(SYSTEM, batch_data(), producer_id=world.producer_id)
    _log_in_as_producer(client, session, world)
    url = f"/portal/producer/batches/{GTIN}/LOT-1/correct"
    html = client.get(url).get_data(as_text=True)
    form = {**_form_fields(html), "csrf_token": [csrf_of(html)]}
    # an expiry date sent by hand (the field is read-only), no reason, no product name
    response = client.post(url, data={**form, "expiry_date": ["2031-12-31"], "reason": [""], "product.name": [""]})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    for name in ("reason", "product-name"):
        assert f'aria-describedby="f-{name}-error"' in html, name
    assert 'aria-describedby="f-expiry_date-error f-expiry_date-hint"' in html  # the error, then the hint
    assert "Không thể đính chính hạn sử dụng" in html
    response = client.post(url, data={**form, "reason": ["không đổi gì"]})  # the same record
    assert response.status_code == 422 and "Chưa có gì thay đổi" in response.get_data(as_text=True)
    assert client.post(url, data={**form, "csrf_token": ["forged"], "quantity": ["5"],
                                  "reason": ["x"]}).status_code == 400
    session.expire_all()
    assert registry.batch(GTIN, "LOT-1").record.get("version") is None  # nothing written


def test_the_correction_form_marks_the_certification_row_without_its_number(client, registry, session, world):
    registry.register_batch(SYSTEM, batch_data(), producer_id=world.producer_id)
    _log_in_as_producer(client, session, world)
    url = f"/portal/producer/batches/{GTIN}/LOT-1/correct"
    html = client.get(url).get_data(as_text=True)
    form = {**_form_fields(html), "csrf_token": [csrf_of(html)], "reason": ["thêm chứng nhận"],
            "certification.scheme": ["VietGAP", "OCOP"], "certification.id": ["VG-1", ""]}
    response = client.post(url, data=form)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert _form_fields(html)["certification.scheme"] == ["VietGAP", "OCOP", ""]  # what was sent stays
    assert re.search(r'<input id="f-certification-id-2" name="certification.id" value=""'
                     r' aria-invalid="true" aria-describedby="f-certification-id-2-error">', html)
    assert 'id="f-certification-id-2-error">Vui lòng điền mục này.' in html
    assert 'aria-invalid="true"' not in re.search(r'<input id="f-certification-id-1"[^>]*>', html).group(0)
    session.expire_all()
    assert registry.batch(GTIN, "LOT-1").record.get("version") is None  # nothing written


def test_only_the_batchs_producer_and_the_authority_may_correct_it(app, client, registry, session, world):
    registry.register_batch(SYSTEM, batch_data(), producer_id=world.producer_id)
    other = registry.admit_producer(SYSTEM, name="Other", tax_code="0399999999", gs1_prefixes=["893600002"],
                                    country="VN")
    make_user(session, "other1", "producer", other.id)
    make_user(session, "inspector1", "inspector")
    session.commit()
    url = f"/portal/producer/batches/{GTIN}/LOT-1/correct"
    client_login(client, "other1")
    assert client.get(url).status_code == 403
    inspector = app.test_client()
    client_login(inspector, "inspector1")
    assert inspector.get(url).status_code == 403
    html = client.get(f"/portal/producer/batches/{GTIN}/LOT-1/correct?producer={world.producer_id}")
    assert html.status_code == 403  # naming the producer does not help another producer's staff
    make_user(session, "registry1", "authority")
    authority = app.test_client()
    client_login(authority, "registry1")
    page = authority.get(f"/portal/producer/batches/{GTIN}/LOT-1/correct?producer={world.producer_id}")
    assert page.status_code == 200
    assert f'action="/portal/producer/batches/{GTIN}/LOT-1/correct?producer={world.producer_id}"' in page.get_data(
        as_text=True)  # the authority stays on this producer's pages


def test_a_producer_reads_the_shoppers_reports_about_its_own_products(app, client, registry, session, world):
    """What was reported, where, from whom, with the photos, and where the case stands; never the
    shopper's contact or the inspectors' notes, and nothing about another producer's products."""
    import hashlib
    from datetime import datetime, timezone

    from registry.models import CaseNote, Report, ReportPhoto

    registry.register_batch(SYSTEM, batch_data(), producer_id=world.producer_id)
    other = registry.admit_producer(SYSTEM, name="Other", tax_code="0399999999", gs1_prefixes=["893600002"],
                                    country="VN")
    now = datetime.now(timezone.utc)
    ours = Report(case_number="VN-2026-000101", code=f"https://x/01/{GTIN}/10/LOT-1", gtin=GTIN, lot="LOT-1",
                  producer_id=world.producer_id, verdict="counterfeit", where_kind="market",
                  where_text="Chợ Lớn, quầy 12", seller="Cửa hàng <i>Phát Đạt</i>", contact="0909 123 456",
                  description="Bao bì in mờ", status="investigating", created_at=now)
    theirs = Report(case_number="VN-2026-000102", code="08936000020016", gtin="08936000020016",
                    producer_id=other.id, where_kind="shop", where_text="Hà Nội", status="new", created_at=now)
    session.add_all([ours, theirs])
    session.flush()
    photo = io.BytesIO()
    from PIL import Image

    Image.new("RGB", (8, 8), "red").save(photo, "PNG")
    sha = hashlib.sha256(photo.getvalue()).hexdigest()
    session.add(ReportPhoto(report_id=ours.id, media_type="image/png", sha256=sha, data=photo.getvalue()))
    theirs_photo = hashlib.sha256(b"x").hexdigest()
    session.add(ReportPhoto(report_id=theirs.id, media_type="image/png", sha256=theirs_photo, data=photo.getvalue()))
    session.add(CaseNote(report_id=ours.id, author="user:thanh", at=now, text="người bán có tiền sự"))
    make_user(session, "producer1", "producer", world.producer_id)
    make_user(session, "other1", "producer", other.id)
    session.commit()
    session.close()

    client_login(client, "producer1")
    home = client.get("/portal/producer/").get_data(as_text=True)
    assert 'href="/portal/producer/reports"' in home  # in the producer's menu
    page = client.get("/portal/producer/reports").get_data(as_text=True)
    assert 'data-case="VN-2026-000101" data-status="investigating"' in page and "VN-2026-000102" not in page
    assert '<span class="badge badge-case-investigating">Đang xác minh</span>' in page
    assert "Chợ Lớn, quầy 12" in page and "Cửa hàng &lt;i&gt;Phát Đạt&lt;/i&gt;" in page and "Bao bì in mờ" in page
    assert "0909 123 456" not in page and "tiền sự" not in page  # the contact and the notes stay with inspectors
    assert f'href="/portal/producer/batches/{GTIN}/LOT-1"' in page
    assert client.get(f"/portal/cases/VN-2026-000101/photos/{sha}").status_code == 200
    assert client.get(f"/portal/cases/VN-2026-000102/photos/{theirs_photo}").status_code == 403
    assert client.get("/portal/cases/VN-2026-000101").status_code == 403  # the case page is the inspectors'

    other_client = app.test_client()
    client_login(other_client, "other1")
    theirs_page = other_client.get("/portal/producer/reports").get_data(as_text=True)
    assert "VN-2026-000102" in theirs_page and "VN-2026-000101" not in theirs_page
    assert other_client.get(f"/portal/producer/reports?producer={world.producer_id}").status_code == 403
    assert other_client.get(f"/portal/cases/VN-2026-000101/photos/{sha}").status_code == 403


def test_switching_language_on_a_form_with_its_mistakes_leads_back_to_the_form(client, session, world):
    """A form answered with its mistakes is the answer to a POST: its language links lead to the
    page the form was on (they had led to the POST's own address, a 405 error page)."""
    _log_in_as_producer(client, session, world)
    form_page = "/portal/producer/batches/new"
    token = csrf_of(client.get(form_page).get_data(as_text=True))
    refused = client.post(form_page, data={"csrf_token": token, "gtin": "12345"},
                          headers={"Referer": f"http://localhost{form_page}"})
    assert refused.status_code == 422
    link = re.search(r'<a href="(/lang/en[^"]*)" hreflang="en"', refused.get_data(as_text=True)).group(1)
    switched = client.get(html_unescape(link))
    assert switched.status_code == 302 and switched.headers["Location"] == form_page
    assert client.get(form_page, headers={"Accept-Language": "en"}).status_code == 200
    foreign = client.post(form_page, data={"csrf_token": token, "gtin": "12345"},
                          headers={"Referer": "https://evil.example/portal/producer/"})  # not this site: home
    link = re.search(r'<a href="(/lang/en[^"]*)" hreflang="en"', foreign.get_data(as_text=True)).group(1)
    assert client.get(html_unescape(link)).headers["Location"] == "/portal/"


@pytest.mark.parametrize("length", [201, 400_000])
def test_a_product_name_longer_than_the_apis_is_marked_on_the_form_the_rest_kept_nothing_registered(
        client, registry, session, world, length):
    """X6: the form had signed a product name of 400,000 characters into the public log for good,
    which the API refuses past 200. Now the form marks the name, keeps what was typed, and nothing
    is registered."""
    _log_in_as_producer(client, session, world)
    token = csrf_of(client.get("/portal/producer/batches/new").get_data(as_text=True))
    made = (date.today() - timedelta(days=3)).isoformat()
    typed = {"gtin": GTIN, "lot": "X6", "product.name": "A" * length, "product.brand": "Highland",
             "facility.name": "Xưởng Ea Tu", "facility.address": "Buôn Ma Thuột", "production_date": made,
             "quantity": "1200", "certification.scheme": "VietGAP", "certification.id": "VG-1"}
    response = client.post("/portal/producer/batches/new", data={"csrf_token": token, **typed})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert re.search(r'<input id="f-product-name" name="product.name" type="text" value="A{%d}" '
                     r'aria-invalid="true" aria-describedby="f-product-name-error"' % length, html)
    assert 'id="f-product-name-error">Nội dung quá dài.</p>' in html  # the catalogue's words
    assert html.count('aria-invalid="true"') == 1  # that field alone
    fields = _form_fields(html, "batch-form")
    assert {name: [v for v in fields[name] if v] for name in typed} == {name: [value] for name, value in typed.items()}
    session.expire_all()
    with pytest.raises(NotFound):
        registry.batch(GTIN, "X6")


def test_every_text_of_the_batch_form_longer_than_the_apis_is_marked_at_once(client, registry, session, world):
    _log_in_as_producer(client, session, world)
    token = csrf_of(client.get("/portal/producer/batches/new").get_data(as_text=True))
    too_long = {"product.name": 201, "product.brand": 201, "product.category": 201, "facility.name": 201,
                "facility.address": 501, "certification.scheme": 101, "certification.id": 101}
    response = client.post("/portal/producer/batches/new", data={
        "csrf_token": token, "gtin": GTIN, "lot": "X7", "production_date": "2026-01-01",
        **{name: "x" * length for name, length in too_long.items()}})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    marked = re.findall(r'<p class="field-error" id="f-([\w-]+)-error">([^<]*)</p>', html)
    assert marked == [(name.replace(".", "-") + ("-1" if name.startswith("certification.") else ""),
                       "Nội dung quá dài.") for name in too_long]  # a certification: its row's
    at_limit = client.post("/portal/producer/batches/new", data={
        "csrf_token": token, "gtin": GTIN, "lot": "X7", "production_date": "2026-01-01",
        **{name: "x" * (length - 1) for name, length in too_long.items()}})
    assert at_limit.status_code == 303  # one character less is what the API takes
    session.expire_all()
    assert registry.batch(GTIN, "X7").record["facility"]["address"] == "x" * 500


def test_an_import_line_with_a_text_longer_than_the_apis_is_refused_in_the_preview_and_nothing_imported(
        client, registry, session, world):
    _log_in_as_producer(client, session, world)
    page = client.get("/portal/producer/import").get_data(as_text=True)
    csv_text = CSV_HEADER + (f"{GTIN},X6,{'A' * 201},,,Xưởng,{'a' * 501},,VN,2026-01-01,,,VietGAP,{'V' * 101}\n"
                             f"{GTIN},X7,Trà,,,Xưởng,,,VN,2026-01-01,,,,\n")
    response = client.post("/portal/producer/import", content_type="multipart/form-data", data={
        "csrf_token": csrf_of(page), "file": (io.BytesIO(csv_text.encode()), "batches.csv")})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    row = re.search(r'<tr class="row-error" data-line="2">.*?</tr>', html, re.S).group(0)
    assert re.findall(r'<li><span class="mono">(\w+)</span>: ([^<]*)</li>', row) == [
        ("product_name", "Nội dung quá dài."), ("facility_address", "Nội dung quá dài."),
        ("certification_id", "Nội dung quá dài.")]
    assert '<tr class="row-ok" data-line="3">' in html and 'id="import-form"' not in html
    # the import sent anyway (the preview offers no button): all or nothing, the line named
    confirmed = client.post("/portal/producer/import", data={"csrf_token": csrf_of(page), "csv_text": csv_text,
                                                            "confirm": "1"}, follow_redirects=True)
    assert "Không có gì được nhập: dòng 2: Nội dung quá dài." in confirmed.get_data(as_text=True)
    session.expire_all()
    for lot in ("X6", "X7"):
        with pytest.raises(NotFound):
            registry.batch(GTIN, lot)


def test_the_correction_form_marks_a_product_name_longer_than_the_apis(client, registry, session, world):
    registry.register_batch(SYSTEM, batch_data(), producer_id=world.producer_id)
    _log_in_as_producer(client, session, world)
    url = f"/portal/producer/batches/{GTIN}/LOT-1/correct"
    html = client.get(url).get_data(as_text=True)
    form = {**_form_fields(html), "csrf_token": [csrf_of(html)], "product.name": ["A" * 201], "reason": ["tên"]}
    response = client.post(url, data=form)
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert 'id="f-product-name-error">Nội dung quá dài.</p>' in html
    assert _form_fields(html)["product.name"] == ["A" * 201]  # what was typed stays
    session.expire_all()
    assert registry.batch(GTIN, "LOT-1").record.get("version") is None  # nothing written


def test_import_dates_written_back_day_first_by_a_vietnamese_spreadsheet_are_read():
    """Excel in a Vietnamese locale saves the template's 2026-11-01 as 01/11/2026: such a file had
    been refused line by line ("must be a date YYYY-MM-DD")."""
    from app.portal.batch_csv import parse_csv, template_csv

    header = template_csv().splitlines()[0].lstrip("\ufeff")
    line = "08936000010010,L1,Cà phê,,,Xưởng,,,VN,{},{},100,,"
    rows = parse_csv((header + "\n" + line.format("01/11/2026", "1-2-2027") + "\n"
                      + line.format("2026-11-01", "31.12.2027") + "\n" + line.format("11/2026", "") + "\n").encode())
    assert [(r.data["production_date"], r.data["expiry_date"]) for r in rows] == [
        ("2026-11-01", "2027-02-01"), ("2026-11-01", "2027-12-31"), ("11/2026", "")]  # the last, for the registry


def test_the_batch_form_registers_several_certifications_at_once(client, registry, session, world):
    """The registration form had held one: a second meant a correction at once, and shoppers'
    pages then said the record had been corrected."""
    _log_in_as_producer(client, session, world)
    page = client.get("/portal/producer/batches/new").get_data(as_text=True)
    assert len(_form_fields(page, "batch-form")["certification.scheme"]) == 3  # rows to fill, without JavaScript
    response = client.post("/portal/producer/batches/new", data={
        "csrf_token": csrf_of(page), "gtin": GTIN, "lot": "L-CERT", "product.name": "Trà", "facility.name": "Xưởng",
        "production_date": "2026-01-01", "certification.scheme": ["VietGAP", "", "OCOP"],
        "certification.id": ["VG-1", "", "4-sao"]})
    assert response.status_code == 303, response.get_data(as_text=True)[-2000:]
    session.expire_all()
    batch = registry.batch(GTIN, "L-CERT")
    assert batch.record["certifications"] == [{"scheme": "VietGAP", "id": "VG-1"}, {"scheme": "OCOP", "id": "4-sao"}]
    assert batch.record.get("version", 1) == 1


def test_an_import_line_holds_more_certifications_in_numbered_columns(client, registry, session, world):
    """A CSV line had held one certification (a second meant a correction at once, which shoppers'
    pages then announce). Further ones go in certification_scheme_2 / certification_id_2 and so on;
    a blank pair is skipped, and an error names the column it is about."""
    _log_in_as_producer(client, session, world)
    header = CSV_HEADER.rstrip("\n") + ",certification_scheme_2,certification_id_2,certification_scheme_3,certification_id_3\n"
    page = client.get("/portal/producer/import").get_data(as_text=True)
    assert "certification_scheme_2" in page  # the page says how
    bad = header + f"{GTIN},M1,Trà,,,Xưởng,,,VN,2026-01-01,,,VietGAP,VG-1,,,HACCP,\n"
    response = client.post("/portal/producer/import", content_type="multipart/form-data", data={
        "csrf_token": csrf_of(page), "file": (io.BytesIO(bad.encode()), "batches.csv")})
    assert response.status_code == 422
    row = re.search(r'<tr class="row-error" data-line="2">.*?</tr>', response.get_data(as_text=True), re.S).group(0)
    assert re.findall(r'<li><span class="mono">(\w+)</span>: ([^<]*)</li>', row) == [
        ("certification_id_3", "Vui lòng điền mục này.")]
    good = header + f"{GTIN},M2,Trà,,,Xưởng,,,VN,2026-01-01,,,VietGAP,VG-1,,,HACCP,H-9\n"
    confirmed = client.post("/portal/producer/import", data={"csrf_token": csrf_of(page), "csv_text": good,
                                                            "confirm": "1"})
    assert confirmed.status_code == 303, confirmed.get_data(as_text=True)[-2000:]
    session.expire_all()
    batch = registry.batch(GTIN, "M2")
    assert batch.record["certifications"] == [{"scheme": "VietGAP", "id": "VG-1"}, {"scheme": "HACCP", "id": "H-9"}]
    assert batch.record.get("version", 1) == 1
