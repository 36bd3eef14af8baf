"""Reports through the API and the HTML form; publications through the API."""

from __future__ import annotations

import hashlib
import io
import re

import pytest
from PIL import Image

from registry.models import Publication, Report

from tests.app.verdict_codes import make_codes


def jpeg(size=(64, 48)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (10, 120, 40)).save(out, "JPEG")
    return out.getvalue()


def form_fields(**extra):
    data = {"where_kind": "ecommerce", "where_text": "Shopee", "seller": "shop_abc", "link": "https://shopee.vn/p/1",
            "price": "99000", "bought_on": "2026-01-02", "client_id": "device-1"}
    data.update(extra)
    return data


# -- API ---------------------------------------------------------------------------------------

def test_api_report_is_stored_with_photos(client, session, registry, world):
    codes = make_codes(registry, session, producer_id=world.producer_id, kid=world.kid)
    data = form_fields(code=codes["counterfeit"])
    data["photo"] = [(io.BytesIO(jpeg()), "a.jpg"), (io.BytesIO(jpeg((80, 80))), "b.jpg")]
    response = client.post("/api/v1/reports", data=data, content_type="multipart/form-data")
    assert response.status_code == 201, response.json
    body = response.json
    assert re.fullmatch(r"VN-\d{4}-\d{6}", body["case_number"])
    assert body["verdict"] == "counterfeit" and len(body["photos"]) == 2
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["created_at"])  # not +00:00
    session.expire_all()
    report = session.query(Report).filter_by(case_number=body["case_number"]).one()
    assert report.seller == "shop_abc" and len(report.photos) == 2 and report.lot == "LOT-1"


def test_api_report_appears_in_openapi(client):
    spec = client.get("/api/v1/openapi.json").json
    assert "/api/v1/reports" in spec["paths"] and "/api/v1/warnings" in spec["paths"]
    assert "/api/v1/publications/{publication_id}/withdraw" in spec["paths"]


def test_api_missing_fields(client):
    response = client.post("/api/v1/reports", data={"where_kind": "shop"}, content_type="multipart/form-data")
    assert response.status_code == 422
    assert response.json["error"]["fields"] == {"where_text": "FIELD_REQUIRED", "code": "CODE_OR_PHOTO"}
    response = client.post("/api/v1/reports", data={"code": "x"}, content_type="multipart/form-data")
    assert response.status_code == 422 and "where_kind" in str(response.json["error"])
    # a JSON body is not a form: said so, not "where_kind is missing" beside the where_kind it holds
    response = client.post("/api/v1/reports", json={"code": "x", "where_kind": "shop", "where_text": "chợ"})
    assert response.status_code == 415 and response.json["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert "multipart/form-data" in response.json["error"]["message"]
    response = client.post("/api/v1/verify/image", json={"image": "x"})
    assert response.status_code == 415 and response.json["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"


@pytest.mark.parametrize("payload, status, code", [
    (b"just some text, not a photo at all", 415, "UNSUPPORTED_MEDIA_TYPE"),
    (jpeg()[:150], 422, "IMAGE_UNDECODABLE"),
    (jpeg() + b"\0" * (10 * 1024 * 1024), 413, "PHOTO_TOO_LARGE"),
    (b"", 400, "IMAGE_EMPTY"),  # a file chosen that holds nothing: said, not dropped in silence
])
def test_api_bad_photos(client, session, payload, status, code):
    data = form_fields(code="08936000010010", photo=(io.BytesIO(payload), "p.jpg"))
    response = client.post("/api/v1/reports", data=data, content_type="multipart/form-data")
    assert response.status_code == status
    assert response.json["error"]["code"] == code and response.json["error"]["message"]
    assert session.query(Report).count() == 0


def test_no_file_chosen_is_no_photo(client, session):
    """A form's photo field left empty sends a part with no file name and no bytes: no photo, not an
    empty one."""
    response = client.post("/api/v1/reports", data=form_fields(code="08936000010010", photo=(io.BytesIO(b""), "")),
                           content_type="multipart/form-data")
    assert response.status_code == 201 and response.json["photos"] == []
    page = _post_form(client, {**form_fields(code="08936000010010"), "photo": (io.BytesIO(b""), "")})
    assert page.status_code == 303
    assert session.query(Report).count() == 2


def test_api_body_over_the_limit(client):
    big = b"\xff\xd8\xff" + b"\0" * (32 * 1024 * 1024)
    response = client.post("/api/v1/reports", data=form_fields(photo=(io.BytesIO(big), "p.jpg")),
                           content_type="multipart/form-data")
    assert response.status_code == 413 and response.json["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert "limit of 31 MiB" in response.json["error"]["message"]  # the reports' own limit, three photos
    photo = client.post("/api/v1/verify/image", data={"image": (io.BytesIO(big), "p.jpg")},
                        content_type="multipart/form-data")
    assert photo.status_code == 413 and "limit of 10 MiB" in photo.json["error"]["message"]
    page = client.post("/check", data={"image": (io.BytesIO(big), "p.jpg")}, content_type="multipart/form-data",
                       headers={"Accept": "text/html", "Accept-Language": "en"})
    # the scan page again, saying what to do (its script sends such a photo smaller: test_browser)
    assert page.status_code == 413 and "This photo's file is too large to send." in page.get_data(as_text=True)
    assert 'id="photo-form"' in page.get_data(as_text=True)


def test_a_form_over_its_own_limits_is_said_to_be_so(client):
    """One form field over MAX_FORM_MEMORY_SIZE (500,000 bytes), or over 1,000 parts, in a body well
    within the reports' 31 MiB: the 413 had said the body was over 31 MiB."""
    data = form_fields(code="08936000010010", description="x" * 600_000)
    response = client.post("/api/v1/reports", data=data, content_type="multipart/form-data")
    assert response.status_code == 413 and response.json["error"] == {
        "code": "PAYLOAD_TOO_LARGE",
        "message": "the form is over one of its own limits: a field other than a file of at most 500,000 bytes, "
                   "at most 1,000 parts"}
    parts = {**form_fields(code="08936000010010"), **{f"extra{i}": "x" for i in range(1001)}}  # too many parts
    response = client.post("/api/v1/reports", data=parts, content_type="multipart/form-data")
    assert response.status_code == 413 and "at most 1,000 parts" in response.json["error"]["message"]
    data = form_fields(code="08936000010010", description="x" * 600_000)
    page = client.post("/report", data=data, content_type="multipart/form-data",
                       headers={"Accept": "text/html", "Accept-Language": "en"})
    assert page.status_code == 413
    assert "A text you sent is too long (at most 500 KB in one field), or the form has too many parts." \
        in page.get_data(as_text=True)


def test_api_flood_from_one_client(client):
    statuses = [client.post("/api/v1/reports", data=form_fields(code="08936000010010"),
                            content_type="multipart/form-data").status_code for _ in range(6)]
    assert statuses == [201] * 5 + [429]
    response = client.post("/api/v1/reports", data=form_fields(code="08936000010010"),
                           content_type="multipart/form-data")
    assert response.json["error"]["code"] == "TOO_MANY_REPORTS"
    # when to try again: once the first of the hour's five stops counting, within the hour
    assert 3500 <= int(response.headers["Retry-After"]) <= 3600
    other = client.post("/api/v1/reports", data=form_fields(code="08936000010010", client_id="device-2"),
                        content_type="multipart/form-data")
    assert other.status_code == 201


# -- the HTML form -----------------------------------------------------------------------------

def _token(client, path="/report"):
    html = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def _post_form(client, data, **headers):
    return client.post("/report", data={"csrf_token": _token(client), **data}, content_type="multipart/form-data",
                       headers=headers)


def test_the_form_is_for_every_verdict_that_offers_it_and_a_link_can_stand_for_the_place(client, session):
    """Reached from a recalled or expired verdict too: headed as a report of a product, not of a
    fake. An online seller's link is enough without an address, and the page says so."""
    html = client.get("/report", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "<h1>Report a product</h1>" in html and "recalled or expired product still on sale" in html
    assert "suspected fake</h1>" not in html
    assert re.search(r'<input id="where_text" name="where_text" value="" aria-describedby="where-hint">', html)
    response = _post_form(client, form_fields(code="08936000010010", where_kind="ecommerce", where_text="",
                                              link="https://shopee.vn/product/1"))
    assert response.status_code == 303 and "/report/sent?case=VN-" in response.headers["Location"]


def test_form_report_answers_a_case_number(client, session):
    data = form_fields(code="08936000010010", description="Hộp méo", photo=(io.BytesIO(jpeg()), "a.jpg"))
    response = _post_form(client, data)
    assert response.status_code == 303 and "/report/sent?case=VN-" in response.headers["Location"]
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    case = re.search(r'data-case="(VN-\d{4}-\d{6})"', page).group(1)
    assert session.query(Report).filter_by(case_number=case).one().description == "Hộp méo"


def test_form_needs_csrf_and_a_lost_session_keeps_what_was_typed(client, session):
    """Sent without its session's token (the session expired, the browser restarted): refused,
    nothing saved, and the form comes back with what was typed, a notice and a new token."""
    entered = {"code": "08936000010010", "where_kind": "market", "where_text": "Chợ Bến Thành", "seller": "Bà Tư",
               "price": "50.000", "bought_on": "2026-01-05", "contact": "0909 000 111", "description": "Mùi lạ"}
    response = client.post("/report", data=entered, headers={"Accept": "text/html"})
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "Phiên làm việc đã hết hạn trước khi biểu mẫu được gửi nên chưa có gì được lưu." in html
    _kept(html, **entered)
    assert session.query(Report).count() == 0
    session.rollback()  # end the read: SQLite's writer would wait for it
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    again = client.post("/report", data={"csrf_token": token, **entered}, content_type="multipart/form-data")
    assert again.status_code == 303 and session.query(Report).count() == 1
    english = client.post("/report", data=entered, headers={"Accept": "text/html", "Accept-Language": "en"})
    assert "Your session expired before the form was sent" in english.get_data(as_text=True)


def _kept(html: str, **values) -> None:
    for name, value in values.items():
        if name == "where_kind":
            assert re.search(rf'name="where_kind" value="{value}" checked', html), name
        elif name == "description":
            assert f">{value}</textarea>" in html
        else:
            assert re.search(rf'name="{name}"[^>]*value="{re.escape(value)}"', html), name


def test_form_missing_fields_keep_what_was_entered(client):
    entered = {"code": "", "where_kind": "market", "where_text": "", "seller": "Bà Tư", "price": "50.000",
               "bought_on": "2026-01-05", "contact": "0909 000 111", "description": "Mùi lạ"}
    response = _post_form(client, entered, **{"Accept-Language": "en"})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Please fill in this field." in html
    assert "Enter the code on the product, or add at least one photo of it." in html
    assert 'aria-invalid="true"' in html
    _kept(html, where_kind="market", seller="Bà Tư", price="50.000", bought_on="2026-01-05",
          contact="0909 000 111", description="Mùi lạ")


@pytest.mark.parametrize("payload, status, message", [
    (b"not an image, a text file" * 3, 415, "A file is not a photo."),
    (jpeg()[:150], 422, "A photo is damaged and cannot be opened."),
    (jpeg() + b"\0" * (10 * 1024 * 1024 + 10), 413, "A photo is larger than 10 MB."),
    (b"", 400, "A photo is an empty file."),
])
def test_form_bad_photo_keeps_values(client, payload, status, message):
    entered = form_fields(code="08936000010010", seller="Shop Ánh Dương", description="Giá quá rẻ")
    entered["photo"] = (io.BytesIO(payload), "p.jpg")
    response = _post_form(client, entered, **{"Accept-Language": "en"})
    html = response.get_data(as_text=True)
    assert response.status_code == status
    assert message in html and "please choose your photos again" in html
    _kept(html, code="08936000010010", seller="Shop Ánh Dương", where_kind="ecommerce", where_text="Shopee",
          link="https://shopee.vn/p/1", description="Giá quá rẻ")


def test_form_flood_keeps_values(client):
    for _ in range(5):
        assert _post_form(client, form_fields(code="08936000010010")).status_code == 303
    response = _post_form(client, form_fields(code="08936000010010", seller="Người bán X"), **{"Accept-Language": "en"})
    html = response.get_data(as_text=True)
    assert response.status_code == 429 and 3500 <= int(response.headers["Retry-After"]) <= 3600
    assert "You have sent many reports in a short time." in html
    _kept(html, seller="Người bán X", code="08936000010010")


# -- publications API --------------------------------------------------------------------------

def test_publications_api(client, world, session):
    body = {"kind": "warning", "title": "Rượu giả", "product": "Rượu vang Đà Lạt", "decided_on": "2026-02-01"}
    assert client.post("/api/v1/publications", json=body).status_code == 401
    assert client.post("/api/v1/publications", json=body, headers=world.auth("producer")).status_code == 403
    response = client.post("/api/v1/publications", json=body, headers=world.auth("authority"))
    assert response.status_code == 201, response.json
    item = response.json
    assert item["record"]["t"] == "publication" and item["record"]["sig"]["kid"]
    listed = client.get("/api/v1/warnings", query_string={"q": "ruou vang"}).json["items"]
    assert [i["id"] for i in listed] == [item["id"]]
    assert client.get("/api/v1/violators").json["items"] == []
    bad = client.post("/api/v1/publications", json={"kind": "x", "title": "t"}, headers=world.auth("authority"))
    assert bad.status_code == 422
    withdrawn = client.post(f"/api/v1/publications/{item['id']}/withdraw", json={"reason": "nhầm"},
                            headers=world.auth("authority"))
    assert withdrawn.status_code == 200 and withdrawn.json["withdrawn_at"]
    assert client.get("/api/v1/warnings").json["items"] == []
    again = client.post(f"/api/v1/publications/{item['id']}/withdraw", json={"reason": "x"},
                        headers=world.auth("authority"))
    assert again.status_code == 409
    session.expire_all()
    assert session.get(Publication, item["id"]) is not None  # never deleted


def test_form_error_messages_say_what_is_wrong(client):
    """A missing place kind is a choice to make; a link with a space is not a web address."""
    response = _post_form(client, {"code": "08936000010010", "where_text": "Chợ", "link": "https://shop.vn/a b"},
                          **{"Accept-Language": "en"})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Please choose one of the options." in html
    assert "Please fill in this field." not in html
    assert "Enter a web address, such as shopee.vn/shop/123, with no spaces." in html


def test_report_sent_shows_only_a_case_number(client):
    assert client.get("/report/sent?case=VN-2026-000123").status_code == 200
    for bogus in ("", "anything", "VN-2026-12", "<b>VN-2026-000123</b>"):
        response = client.get("/report/sent", query_string={"case": bogus})
        assert response.status_code == 303 and response.headers["Location"].endswith("/report"), bogus


# -- following a report ------------------------------------------------------------------------------

def _filed_through_the_api(client) -> dict:
    response = client.post("/api/v1/reports", data=form_fields(code="08936000010010"),
                           content_type="multipart/form-data")
    assert response.status_code == 201
    return response.json


def test_api_report_answers_a_follow_up_code_that_shows_where_it_stands(client, session):
    body = _filed_through_the_api(client)
    assert re.fullmatch(r"[0-9A-Z]{5}-[0-9A-Z]{5}", body["followup_code"])
    status = client.post("/api/v1/reports/status", json={"case_number": body["case_number"],
                                                         "followup_code": body["followup_code"]})
    assert status.status_code == 200
    assert status.json["status"] == "received" and status.json["published"] is False
    assert set(status.json) == {"case_number", "status", "received_at", "updated_at", "published"}
    wrong = client.post("/api/v1/reports/status", json={"case_number": body["case_number"],
                                                        "followup_code": "ZZZZZ-ZZZZZ"})
    unknown = client.post("/api/v1/reports/status", json={"case_number": "VN-2026-999999",
                                                          "followup_code": body["followup_code"]})
    assert wrong.status_code == unknown.status_code == 404
    assert wrong.json == unknown.json and wrong.json["error"]["code"] == "REPORT_UNKNOWN"
    missing = client.post("/api/v1/reports/status", json={"case_number": body["case_number"]})
    assert missing.status_code == 422 and "followup_code" in str(missing.json["error"])
    assert "/api/v1/reports/status" in client.get("/api/v1/openapi.json").json["paths"]


def test_form_report_shows_the_follow_up_code_to_the_browser_that_sent_it_only(app, client, session):
    response = _post_form(client, form_fields(code="08936000010010"))
    sent = client.get(response.headers["Location"]).get_data(as_text=True)
    case = re.search(r'data-case="(VN-\d{4}-\d{6})"', sent).group(1)
    code = re.search(r'data-code="([0-9A-Z]{5}-[0-9A-Z]{5})"', sent).group(1)
    assert "Mã theo dõi của bạn" in sent
    assert code not in response.headers["Location"]  # never in an address
    assert client.get(response.headers["Location"]).get_data(as_text=True).count(code) >= 1  # a reload keeps it
    stranger = app.test_client().get(response.headers["Location"]).get_data(as_text=True)
    assert case in stranger and 'data-code="' not in stranger
    # the button posts both to the status page
    token = re.search(r'name="csrf_token" value="([^"]+)"', sent).group(1)
    page = client.post("/report/status", data={"csrf_token": token, "case": case, "code": code})
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and 'data-status="received"' in html
    assert "Báo cáo của bạn đang chờ cán bộ kiểm tra xử lý." in html


def test_the_status_page_works_without_javascript_and_says_nothing_of_a_mismatch(client, session):
    body = _filed_through_the_api(client)
    form = client.get("/report/status?case=" + body["case_number"]).get_data(as_text=True)
    assert f'value="{body["case_number"]}"' in form and 'id="followup"' not in form
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    typed = body["followup_code"].lower().replace("-", "")
    found = client.post("/report/status", data={"csrf_token": token, "case": body["case_number"], "code": typed},
                        headers={"Accept-Language": "en"})
    assert found.status_code == 200 and "Your report is waiting for an inspector." in found.get_data(as_text=True)
    for case, code in ((body["case_number"], "ZZZZZ-ZZZZZ"), ("VN-2026-999999", body["followup_code"]),
                       ("<script>x</script>", "x")):
        miss = client.post("/report/status", data={"csrf_token": token, "case": case, "code": code})
        html = miss.get_data(as_text=True)
        assert miss.status_code == 404 and "Không có báo cáo nào với mã hồ sơ và mã theo dõi này." in html
        assert 'id="followup"' not in html and "<script>x" not in html
    assert client.post("/report/status", data={"case": body["case_number"],
                                                "code": body["followup_code"]}).status_code == 400  # no CSRF token
    for case, code in (("", ""), (body["case_number"], " "), ("", body["followup_code"])):  # a field left empty
        empty = client.post("/report/status", data={"csrf_token": token, "case": case, "code": code})
        assert empty.status_code == 422 and "Hãy nhập mã hồ sơ và mã theo dõi" in empty.get_data(as_text=True)


def test_a_published_case_links_its_shopper_to_the_violator(client, session, registry):
    from registry.cases import CaseService
    from registry.publications import PublicationService
    from registry.services import Actor, Role

    body = _filed_through_the_api(client)
    case = body["case_number"]
    authority = Actor(role=Role.AUTHORITY, name="user:an")
    cases = CaseService(session)
    cases.transition(authority, case, to="investigating")
    cases.transition(authority, case, to="confirmed", text="decision 12/QĐ")
    publications = PublicationService(session, authority=registry.authority)
    cases.publish(authority, case, lambda **fields: publications.publish(authority, **fields), decision_ref="12/QĐ")
    session.commit()
    session.close()
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/report/status").get_data(as_text=True)).group(1)
    html = client.post("/report/status", data={"csrf_token": token, "case": case,
                                               "code": body["followup_code"]}).get_data(as_text=True)
    assert 'data-status="confirmed"' in html
    link = re.search(r'<a href="([^"]+)">Người bán đã có tên trong danh sách đối tượng vi phạm.</a>', html).group(1)
    listed = client.get(link.replace("&amp;", "&")).get_data(as_text=True)
    assert f"({case})" in listed  # the violator published from this case, found by its number


def test_switching_language_on_the_report_form_with_its_mistakes_keeps_the_code(client):
    """The report form answered with its mistakes (a POST): its language links lead back to the
    form as it was opened, the product's code in it, not to an empty form."""
    opened = "/report?code=08936000010010"
    refused = client.post("/report", data={"csrf_token": _token(client, opened), "code": "08936000010010"},
                          content_type="multipart/form-data",
                          headers={"Accept": "text/html", "Referer": f"http://localhost{opened}"})
    assert refused.status_code == 422
    link = re.search(r'<a href="(/lang/en[^"]*)" hreflang="en"', refused.get_data(as_text=True)).group(1)
    switched = client.get(link.replace("&amp;", "&"))
    assert switched.status_code == 302 and switched.headers["Location"] == opened
    english = client.get(opened, headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert 'value="08936000010010"' in english


def test_a_shoppers_photo_is_kept_upright_and_without_what_the_camera_wrote_beside_it(client, session, registry,
                                                                                      world):
    """A phone's JPEG carries its GPS position (often the shopper's home) and the phone's make in
    EXIF; a PNG can carry text and EXIF chunks. What is kept, and served to the producer whose
    product the report is about, is the picture alone, turned upright, hashed as served."""
    codes = make_codes(registry, session, producer_id=world.producer_id, kid=world.kid)
    exif = Image.Exif()
    exif[0x010F] = "Apple"  # Make
    exif[0x0110] = "iPhone 15 Pro"  # Model
    exif[0x0112] = 6  # Orientation: the picture is to be turned 90° clockwise
    exif[0x8825] = {1: "N", 2: (21.0, 1.0, 42.5), 3: "E", 4: (105.0, 50.0, 12.3)}  # GPS
    phone = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 120, 40)).save(phone, "JPEG", exif=exif, comment=b"shot at home")
    from PIL import PngImagePlugin
    text = PngImagePlugin.PngInfo()
    text.add_text("Location", "12 Hang Bac, Ha Noi")
    screenshot = io.BytesIO()
    Image.new("RGBA", (30, 20), (200, 10, 10, 255)).save(screenshot, "PNG", pnginfo=text, exif=exif)
    for raw in (phone.getvalue(), screenshot.getvalue()):
        assert b"iPhone 15 Pro" in raw
    data = form_fields(code=codes["genuine"])
    data["photo"] = [(io.BytesIO(phone.getvalue()), "IMG_0001.jpg"), (io.BytesIO(screenshot.getvalue()), "s.png")]
    response = client.post("/api/v1/reports", data=data, content_type="multipart/form-data")
    assert response.status_code == 201, response.json
    case, photos = response.json["case_number"], response.json["photos"]
    served = []
    for photo in photos:
        r = client.get(f"/api/v1/cases/{case}/photos/{photo['sha256']}", headers=world.auth("producer"))
        assert r.status_code == 200, r.json
        assert hashlib.sha256(r.data).hexdigest() == photo["sha256"]
        for secret in (b"iPhone", b"Apple", b"Hang Bac", b"shot at home", b"Exif"):
            assert secret not in r.data
        served.append(r)
    with Image.open(io.BytesIO(served[0].data)) as kept:
        assert (kept.format, kept.size) == ("JPEG", (48, 64))  # upright: turned as the phone said
        assert not kept.getexif() and "icc_profile" not in kept.info
        assert served[0].mimetype == "image/jpeg"
    with Image.open(io.BytesIO(served[1].data)) as kept:
        assert (kept.format, kept.size, kept.mode) == ("PNG", (20, 30), "RGBA")  # its EXIF turns it too
        assert not kept.getexif() and not getattr(kept, "text", {})
        assert kept.getpixel((5, 5)) == (200, 10, 10, 255)
