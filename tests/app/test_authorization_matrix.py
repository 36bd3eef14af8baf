"""Every API route × every role: only the allowed cells succeed (2xx); the others get 401 or 403.

The table below names every ``/api/v1`` route (method and rule). A route added to the API but
not to the table fails ``test_every_route_is_in_the_table``, so no route goes unchecked. Each
cell runs on a fresh database holding two producers (A, whose resources every request targets,
and B), so "producer-other" is producer B trying to read or change producer A's batches, labels,
serials, recalls, keys, tokens and reports.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

import pytest
from PIL import Image

from registry.accounts import AccountService, TokenAdmin
from registry.cases import CaseService
from registry.inspections import InspectionService
from registry.models import Report, ReportPhoto, Serial
from registry.publications import PublicationService
from registry.services import SYSTEM, Actor, Role, TokenService
from tests.conftest import GTIN, batch_data

ROLES = ("none", "authority", "producer-own", "producer-other", "inspector", "partner")
ALL = frozenset(ROLES)
AUTH = frozenset({"authority"})
OWN = frozenset({"authority", "producer-own"})
WORK = frozenset({"authority", "inspector"})
OPENER = frozenset({"inspector"})  # who opened the scene's inspection: only they add checks to it or close it
READ = frozenset({"authority", "inspector", "partner"})
SIGNED_IN = ALL - {"none"}
FOLLOWUP = "AAAAA-BBBBB"  # the follow-up code of the scene's new case


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (16, 16), "white").save(out, format="PNG")
    return out.getvalue()


@dataclass
class Scene:
    producer: str
    other: str
    kid: str
    serial: str
    unit_url: str
    case_new: str
    case_confirmed: str
    photo_sha: str
    note_id: int
    inspection: int
    check_id: int
    publication: int
    token_to_revoke: int
    tokens: dict[str, str] = field(default_factory=dict)

    def headers(self, role: str) -> dict[str, str]:
        if role == "none":
            return {}
        return {"Authorization": f"Bearer {self.tokens[role]}"}


@pytest.fixture
def scene(session, registry, world) -> Scene:
    producer_a = Actor(role=Role.PRODUCER, producer_id=world.producer_id, name="producer-a")
    other = registry.admit_producer(SYSTEM, name="Cơ sở B", tax_code="0399999999", gs1_prefixes=["893600002"],
                                    country="VN")
    registry.certify_key(SYSTEM, other.id)
    registry.register_batch(producer_a, batch_data())
    (serial, _), = registry.issue_serials(producer_a, GTIN, "LOT-1", 1)
    unit_url = next(registry.labels(producer_a, GTIN, "LOT-1", serial=serial)).url
    session.query(Serial).filter(Serial.serial == serial).one().flagged = "SERIAL_CLONED"
    tokens = TokenService(session)
    issued = {"authority": world.tokens["authority"], "producer-own": world.tokens["producer"],
              "inspector": world.tokens["inspector"], "partner": world.tokens["partner"],
              "producer-other": tokens.create(role=Role.PRODUCER, producer_id=other.id)[0]}
    inspector = tokens.authenticate(issued["inspector"])
    _, spare = TokenAdmin(session).create(producer_a, role="producer", label="spare")
    now = datetime.now(timezone.utc).replace(microsecond=0)
    reports = []
    for number, status in ((1, "new"), (2, "confirmed")):
        report = Report(case_number=f"VN-2026-{number:06d}", code=unit_url, gtin=GTIN, lot="LOT-1", serial=serial,
                        producer_id=world.producer_id, verdict="suspect", where_kind="market", where_text="Chợ Lớn",
                        seller="Cửa hàng X", contact="0909", status=status, created_at=now)
        session.add(report)
        reports.append(report)
    session.flush()
    reports[0].followup_hash = hashlib.sha256(f"{reports[0].case_number}|{FOLLOWUP.replace('-', '')}".encode()).hexdigest()
    photo = _png()
    session.add(ReportPhoto(report_id=reports[0].id, media_type="image/png", sha256=hashlib.sha256(photo).hexdigest(),
                            data=photo))
    note = CaseService(session).add_note(SYSTEM, reports[0].case_number, text="seen", attachment=photo,
                                         attachment_name="shelf.png")
    inspections = InspectionService(session, authority=registry.authority)
    inspection = inspections.open(inspector, place="Chợ Lớn", lat=10.75, lon=106.65)
    check = inspections.add_check(inspector, inspection.id, result={"verdict": "genuine"}, photo=photo)
    publication = PublicationService(session, authority=registry.authority).publish(
        SYSTEM, kind="violator", title="Hàng giả", name="Cơ sở C", decision_ref="QĐ 1/2026")
    AccountService(session).create_user(SYSTEM, username="victim", password="a long enough password",
                                        role="inspector")
    AccountService(session).create_user(SYSTEM, username="minh", password="a long enough password",
                                        role="inspector")  # whom the assign cell assigns the case to
    session.commit()
    return Scene(producer=world.producer_id, other=other.id, kid=world.kid, serial=serial, unit_url=unit_url,
                 case_new=reports[0].case_number, case_confirmed=reports[1].case_number,
                 photo_sha=hashlib.sha256(photo).hexdigest(), note_id=note.id, inspection=inspection.id,
                 check_id=check.id, publication=publication.id, token_to_revoke=spare.id, tokens=issued)


Request = tuple[str, str, dict[str, Any]]
Build = Callable[[Scene], "Request | list[Request]"]


def get(url: str, **kw: Any) -> Build:
    return lambda s: ("GET", url.format(s=s, GTIN=GTIN), kw)


def post(url: str, body: Any = None, **kw: Any) -> Build:
    def build(s: Scene) -> Request:
        payload = body(s) if callable(body) else body
        return "POST", url.format(s=s, GTIN=GTIN), ({"json": payload} if payload is not None else {}) | kw
    return build


def _csv_exports(s: Scene) -> list[Request]:
    return [("GET", f"/api/v1/exports/{name}.csv", {}) for name in ("batches", "recalls", "cases", "violators")]


def _image_form(_s: Scene) -> Request:
    return "POST", "/api/v1/verify/image", {"data": {"image": (io.BytesIO(_png()), "p.png")},
                                            "content_type": "multipart/form-data"}


def _report_form(s: Scene) -> Request:
    return "POST", "/api/v1/reports", {"data": {"where_kind": "market", "where_text": "Chợ Lớn", "code": s.unit_url,
                                                "seller": "X"},
                                       "content_type": "multipart/form-data"}


#: (method, rule) -> (request builder, roles whose request succeeds)
TABLE: dict[tuple[str, str], tuple[Build, frozenset[str]]] = {
    # public reads and the shopper's writes
    ("GET", "/api/v1/openapi.json"): (get("/api/v1/openapi.json"), ALL),
    ("GET", "/api/v1/log/checkpoint"): (get("/api/v1/log/checkpoint"), ALL),
    ("GET", "/api/v1/log/inclusion"): (get("/api/v1/log/inclusion?index=0"), ALL),
    ("GET", "/api/v1/log/consistency"): (get("/api/v1/log/consistency?first=1"), ALL),
    ("GET", "/api/v1/trust-list"): (get("/api/v1/trust-list"), ALL),
    ("GET", "/api/v1/batches/<gtin>/<path:lot>"): (get("/api/v1/batches/{GTIN}/LOT-1"), ALL),
    ("GET", "/api/v1/verify"): (lambda s: ("GET", "/api/v1/verify", {"query_string": {"code": s.unit_url}}), ALL),
    ("POST", "/api/v1/verify/image"): (_image_form, ALL),
    ("POST", "/api/v1/reports"): (_report_form, ALL),
    ("POST", "/api/v1/reports/status"): (post("/api/v1/reports/status", lambda s: {
        "case_number": s.case_new, "followup_code": FOLLOWUP}), ALL),
    ("GET", "/api/v1/warnings"): (get("/api/v1/warnings"), ALL),
    ("GET", "/api/v1/violators"): (get("/api/v1/violators"), ALL),
    # the authority's acts
    ("POST", "/api/v1/producers"): (post("/api/v1/producers", {"name": "C", "tax_code": "0377777777",
                                                               "gs1_prefixes": ["893600003"], "country": "VN"}), AUTH),
    ("POST", "/api/v1/producers/<producer_id>/keys"): (post("/api/v1/producers/{s.producer}/keys", {}), AUTH),
    ("POST", "/api/v1/keys/<kid>/revoke"): (post("/api/v1/keys/{s.kid}/revoke", {}), AUTH),
    ("POST", "/api/v1/publications"): (post("/api/v1/publications", {"kind": "warning", "title": "T",
                                                                     "product": "P"}), AUTH),
    ("POST", "/api/v1/publications/<int:publication_id>/withdraw"): (
        post("/api/v1/publications/{s.publication}/withdraw", {"reason": "error"}), AUTH),
    ("POST", "/api/v1/users"): (post("/api/v1/users", {"username": "newbie", "password": "a long enough password",
                                                       "role": "inspector"}), AUTH),
    ("GET", "/api/v1/users"): (get("/api/v1/users"), AUTH),
    ("GET", "/api/v1/audit-events"): (get("/api/v1/audit-events?limit=5"), AUTH),
    ("POST", "/api/v1/users/<username>/unlock"): (post("/api/v1/users/victim/unlock"), AUTH),
    ("POST", "/api/v1/users/<username>/deactivate"): (post("/api/v1/users/victim/deactivate"), AUTH),
    # producer A's batches, serials, labels, recalls, keys, tokens
    ("POST", "/api/v1/batches"): (post("/api/v1/batches", lambda s: batch_data(lot="LOT-NEW", producer_id=s.producer)),
                                  OWN),
    ("POST", "/api/v1/batches/<gtin>/<path:lot>/serials"): (post("/api/v1/batches/{GTIN}/LOT-1/serials",
                                                                 {"count": 2}), OWN),
    ("GET", "/api/v1/batches/<gtin>/<path:lot>/serials"): (get("/api/v1/batches/{GTIN}/LOT-1/serials"),
                                                           OWN | {"inspector"}),
    ("POST", "/api/v1/batches/<gtin>/<path:lot>/recall"): (post("/api/v1/batches/{GTIN}/LOT-1/recall",
                                                                {"reason": "mould"}), OWN),
    ("POST", "/api/v1/batches/<gtin>/<path:lot>/corrections"): (
        post("/api/v1/batches/{GTIN}/LOT-1/corrections",
             {**{k: v for k, v in batch_data().items() if k not in ("gtin", "lot")}, "quantity": 99,
              "reason": "recounted"}), OWN),
    ("GET", "/api/v1/batches/<gtin>/<path:lot>/labels"): (get("/api/v1/batches/{GTIN}/LOT-1/labels?format=svg"
                                                              "&serial={s.serial}"), OWN),
    ("GET", "/api/v1/batches/<gtin>/<path:lot>/codes.csv"): (get("/api/v1/batches/{GTIN}/LOT-1/codes.csv"), OWN),
    ("GET", "/api/v1/producers/<producer_id>/batches"): (get("/api/v1/producers/{s.producer}/batches"),
                                                         OWN | READ),
    ("GET", "/api/v1/producers/<producer_id>/keys"): (get("/api/v1/producers/{s.producer}/keys"), OWN),
    ("POST", "/api/v1/producers/<producer_id>/keys/rotate"): (post("/api/v1/producers/{s.producer}/keys/rotate"),
                                                              OWN),
    ("GET", "/api/v1/tokens"): (get("/api/v1/tokens"), OWN | {"producer-other"}),  # each sees its own
    ("POST", "/api/v1/tokens"): (post("/api/v1/tokens", lambda s: {"role": "producer", "producer_id": s.producer}),
                                 OWN),
    ("DELETE", "/api/v1/tokens/<int:token_id>"): (lambda s: ("DELETE", f"/api/v1/tokens/{s.token_to_revoke}", {}),
                                                  OWN),
    # inspections (the inspector reads their own, the authority everyone's; each is written by its opener
    # alone, since its signed evidence credits every check to them) and flagged serials
    ("POST", "/api/v1/inspections"): (post("/api/v1/inspections", {"place": "Chợ"}), WORK),
    ("GET", "/api/v1/inspections"): (get("/api/v1/inspections"), WORK),
    ("GET", "/api/v1/inspections/<int:inspection_id>"): (get("/api/v1/inspections/{s.inspection}"), WORK),
    ("POST", "/api/v1/inspections/<int:inspection_id>/checks"): (
        post("/api/v1/inspections/{s.inspection}/checks", lambda s: {"code": s.unit_url}), OPENER),
    ("POST", "/api/v1/inspections/<int:inspection_id>/close"): (post("/api/v1/inspections/{s.inspection}/close"),
                                                                OPENER),
    ("GET", "/api/v1/inspections/<int:inspection_id>/evidence"): (
        get("/api/v1/inspections/{s.inspection}/evidence"), WORK),
    ("GET", "/api/v1/inspections/<int:inspection_id>/checks/<int:check_id>/photo"): (
        get("/api/v1/inspections/{s.inspection}/checks/{s.check_id}/photo"), WORK),
    ("GET", "/api/v1/flagged-serials"): (get("/api/v1/flagged-serials"), WORK),
    ("POST", "/api/v1/flagged-serials/clear"): (post("/api/v1/flagged-serials/clear", lambda s: {
        "gtin": GTIN, "lot": "LOT-1", "serial": s.serial, "note": "the shop's display unit"}), WORK),
    # cases: reports about producer A's product
    ("GET", "/api/v1/cases"): (get("/api/v1/cases"), SIGNED_IN),  # filtered per role
    ("GET", "/api/v1/cases/<case_number>"): (get("/api/v1/cases/{s.case_new}"), WORK | {"producer-own"}),
    ("GET", "/api/v1/cases/<case_number>/photos/<sha256>"): (get("/api/v1/cases/{s.case_new}/photos/{s.photo_sha}"),
                                                             WORK | {"producer-own"}),
    ("GET", "/api/v1/cases/<case_number>/notes"): (get("/api/v1/cases/{s.case_new}/notes"), WORK),
    ("POST", "/api/v1/cases/<case_number>/notes"): (post("/api/v1/cases/{s.case_new}/notes", {"text": "n"}), WORK),
    ("GET", "/api/v1/cases/<case_number>/notes/<int:note_id>/attachment"): (
        get("/api/v1/cases/{s.case_new}/notes/{s.note_id}/attachment"), WORK),
    ("POST", "/api/v1/cases/<case_number>/assign"): (post("/api/v1/cases/{s.case_new}/assign",
                                                          {"assignee": "user:minh"}), WORK),
    ("POST", "/api/v1/cases/<case_number>/transition"): (post("/api/v1/cases/{s.case_new}/transition",
                                                              {"to": "investigating"}), WORK),
    ("POST", "/api/v1/cases/<case_number>/publish"): (post("/api/v1/cases/{s.case_confirmed}/publish",
                                                           {"decision_ref": "1/QĐ"}), AUTH),
    # exports: read-only, partner agencies included
    ("GET", "/api/v1/exports/<any(batches, recalls, cases, violators):name>.csv"): (_csv_exports, READ),
    ("GET", "/api/v1/exports/epcis"): (get("/api/v1/exports/epcis"), READ),
}


def api_rules(app) -> set[tuple[str, str]]:
    found = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/") or rule.rule == "/api/v1":
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                found.add((method, rule.rule))
    return found


def test_every_route_is_in_the_table(app):
    routes = api_rules(app)
    missing = sorted(routes - set(TABLE))
    stale = sorted(set(TABLE) - routes)
    assert not missing, f"routes missing from the authorisation table: {missing}"
    assert not stale, f"table rows for routes that no longer exist: {stale}"


def test_partner_is_read_only_and_anonymous_writes_are_few():
    for (method, rule), (_, allowed) in TABLE.items():
        if method != "GET":
            assert "partner" not in allowed or allowed == ALL, (method, rule)
    public_writes = {rule for (method, rule), (_, allowed) in TABLE.items() if method != "GET" and "none" in allowed}
    assert public_writes == {"/api/v1/verify/image", "/api/v1/reports", "/api/v1/reports/status"}  # the last reads


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("route", sorted(TABLE), ids=lambda r: f"{r[0]} {r[1]}")
def test_cell(client, scene, route, role):
    build, allowed = TABLE[route]
    requests = build(scene)
    for method, url, kwargs in requests if isinstance(requests, list) else [requests]:
        response = client.open(url, method=method, headers=scene.headers(role), **kwargs)
        response.get_data()  # consume streamed bodies inside the test
        response.close()
        status = response.status_code
        assert status < 500, (method, url, role, status, response.get_data(as_text=True)[:300])
        if role in allowed:
            assert 200 <= status < 300, (method, url, role, status, response.get_data(as_text=True)[:300])
        else:
            expected = 401 if role == "none" else 403
            assert status == expected, (method, url, role, status, response.get_data(as_text=True)[:300])
            assert response.is_json and response.get_json()["error"]["code"]
