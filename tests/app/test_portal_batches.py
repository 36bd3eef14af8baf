"""The producer's batch pages: what a batch's badge says, through the Flask test client."""

from __future__ import annotations

import io
import re
from datetime import date, timedelta

from registry.services import SYSTEM

from tests.app.portal_support import client_login, csrf_of, make_user
from tests.conftest import GTIN, batch_data


def _badges(html: str, lot: str) -> list[tuple[str, str]]:
    """The badges in the batch list's row of ``lot``."""
    row = re.search(rf'<tr data-gtin="{GTIN}" data-lot="{lot}">.*?</tr>', html, re.S).group(0)
    return re.findall(r'<span class="badge badge-(\w+)">([^<]*)</span>', row)


def test_an_active_batch_past_its_expiry_is_marked_expired_and_a_recalled_one_stays_recalled(
        client, registry, session, world):
    make_user(session, "producer1", "producer", world.producer_id)
    today = date.today()
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
    make_user(session, "producer1", "producer", world.producer_id)
    session.commit()
    client_login(client, "producer1")
    token = csrf_of(client.get("/portal/producer/batches/new").get_data(as_text=True))
    response = client.post("/portal/producer/batches/new", data={
        "csrf_token": token, "gtin": "12345", "lot": "L1", "product.name": "Trà", "facility.name": "Xưởng",
        "facility.country": "V1", "production_date": "2026-01-01", "quantity": "0"})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    for name in ("gtin", "facility-country", "quantity"):
        assert f'id="f-{name}" name=' in html and f'aria-describedby="f-{name}-error"' in html, name
    assert 'id="f-facility-country-error">Nhập mã quốc gia hai chữ cái, ví dụ VN.' in html  # the catalogue's words


def test_the_import_preview_names_the_files_columns_in_the_pages_language(client, session, world):
    make_user(session, "producer1", "producer", world.producer_id)
    session.commit()
    client_login(client, "producer1")
    page = client.get("/portal/producer/import").get_data(as_text=True)
    csv_text = ("gtin,lot,product_name,brand,category,facility_name,facility_address,facility_gln,facility_country,"
                "production_date,expiry_date,quantity,certification_scheme,certification_id\n"
                "12345,L1,Trà,,,Xưởng,,,V1,2026-01-01,,,,\n")
    response = client.post("/portal/producer/import", content_type="multipart/form-data", data={
        "csrf_token": csrf_of(page), "file": (io.BytesIO(csv_text.encode()), "batches.csv")})
    row = re.search(r'<tr class="row-error" data-line="2">.*?</tr>', response.get_data(as_text=True), re.S).group(0)
    problems = re.findall(r'<li><span class="mono">(\w+)</span>: ([^<]*)</li>', row)
    assert [column for column, _ in problems] == ["gtin", "facility_country"]
    assert all("must" not in text and "got" not in text for _, text in problems)  # no English detail beside it
