"""An accessibility audit, in a real Chromium (Debian's) at a phone's size (390x844), of the pages
people use: axe-core (bundled by ``axe-playwright-python``) runs its WCAG 2.0, 2.1 and 2.2 A and AA
rules on each page, and no violation of impact "serious" or "critical" may be found.

Shoppers: the scan page, verdicts (genuine, counterfeit, recalled), the verdict the camera finds
(written into the scan page by script, with a fake camera playing a label), the report form (empty, then
re-rendered with errors), the sent page, the follow-up page (empty and with a report's status), the
public warnings and violators, and pages after the language switch. The portal: the login, a
producer's batches, registration (empty and with errors), a batch with its labels and the import;
an inspector's home, an inspection with checks and the cases; the authority's cases, a case and
the audit trail. One browser for the module; each test collects every page's violations and fails
once, listing each violation's rule, impact, targets and help.
"""

from __future__ import annotations

import re

import pytest
from axe_playwright_python.sync_playwright import Axe

from registry.publications import PublicationService
from registry.reports import ReportInput, ReportService
from registry.services import SYSTEM

from tests.app.browser import SCREENSHOTS, camera_phone, launch, phone, playwright  # noqa: F401 (fixture)
from tests.app.portal_support import make_user, page_login
from tests.app.test_browser import label_png, path_of, photo_of, write_y4m
from tests.app.verdict_codes import VERDICTS, make_codes

#: axe's tags for the WCAG 2.0, 2.1 and 2.2 success criteria at levels A and AA.
WCAG_A_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
FAILING_IMPACTS = {"serious", "critical"}

_axe = Axe()


@pytest.fixture(scope="module")
def browser(playwright):  # noqa: F811 (the fixture imported above)
    browser = launch(playwright)
    yield browser
    browser.close()


@pytest.fixture
def page(browser):
    context = phone(browser)
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    yield page
    context.close()


class Audit:
    """axe on one page after another; the serious and critical violations, named by page."""

    def __init__(self, page) -> None:
        self.page = page
        self.problems: list[str] = []
        self.seen: set[str] = set()  # the addresses audited

    def __call__(self, name: str) -> None:
        self.page.wait_for_load_state("networkidle")
        results = _axe.run(self.page, options={"runOnly": {"type": "tag", "values": WCAG_A_AA},
                                               "resultTypes": ["violations"]})
        self.seen.add(self.page.url)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)  # what was audited, to look at
        self.page.screenshot(path=str(SCREENSHOTS / f"a11y-{re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-')}.png"),
                             full_page=True)
        for violation in results.response["violations"]:
            if violation["impact"] not in FAILING_IMPACTS:
                continue
            targets = "; ".join(" ".join(node["target"]) for node in violation["nodes"])
            self.problems.append(f"{name} ({self.page.url}): {violation['id']} [{violation['impact']}] "
                                 f"on {targets} — {violation['help']}")

    def check(self) -> None:
        for line in self.problems:
            print(line)
        assert not self.problems, f"{len(self.problems)} accessibility violation(s):\n" + "\n".join(self.problems)


@pytest.fixture
def audit(page):
    return Audit(page)


@pytest.fixture
def codes(registry, session, world):
    made = make_codes(registry, session, producer_id=world.producer_id, kid=world.kid)
    publications = PublicationService(session, authority=registry.authority)
    publications.publish(SYSTEM, kind="warning", title="Sữa bột giả nhãn Abbott", product="Sữa bột Similac",
                         body="Hộp giả có mã vạch in mờ.")
    publications.publish(SYSTEM, kind="violator", title="Bán hàng giả", name="Cửa hàng Phúc An", tax_code="0101",
                         place="Chợ Đồng Xuân, Hà Nội", decision_ref="QĐ 7/2026")
    session.commit()
    session.close()  # release SQLite: the live server writes from its own thread
    return made


def _file_report(session, code: str) -> str:
    filed = ReportService(session).create(ReportInput(code=code, where_kind="market", where_text="Chợ Bến Thành",
                                                      seller="Cô Lan", description="Nhãn in mờ"), client_hash=None)
    session.commit()
    return filed.report.case_number


# -- shoppers ----------------------------------------------------------------------------------

def test_shoppers_pages(page, audit, live_server, codes):
    page.goto(live_server + "/")
    audit("scan")
    for verdict in VERDICTS:  # genuine, counterfeit, recalled and the rest
        code = codes[verdict]
        page.goto(live_server + (path_of(code) if code.startswith("http") else "/check?code=" + code))
        audit(f"verdict {verdict}")
    page.goto(live_server + "/")
    page.set_input_files("#photo", files=[{"name": "label.jpg", "mimeType": "image/jpeg",
                                           "buffer": photo_of(label_png(codes["recalled"]))}])
    page.wait_for_selector("[data-verdict]", timeout=15_000)
    audit("a photo's verdict")

    page.click("a.button.report")  # the recalled product's report form, its code filled in
    page.wait_for_url(re.compile(r"/report\?code="))
    audit("report form")
    assert page.get_attribute("#photo", "aria-describedby") == "photo-hint"  # its limits are read with it
    page.click("#report-form button[type=submit]")  # nothing chosen: the form again, with errors
    page.wait_for_selector(".field-error")
    audit("report form with errors")
    assert page.get_attribute("#where_text", "aria-describedby") == "where_text-error where-hint"
    page.check('input[name="where_kind"][value="market"]')
    page.fill("#where_text", "Chợ Bến Thành, sạp 12")
    page.click("#report-form button[type=submit]")
    page.wait_for_url(re.compile(r"/report/sent\?case="))
    audit("report sent")
    page.click("form.followup-now button")
    page.wait_for_selector("#followup")
    audit("follow-up with a status")
    page.goto(live_server + "/report/status")
    audit("follow-up form")

    page.goto(live_server + "/warnings")
    audit("warnings")
    page.goto(live_server + "/violators?q=phuc+an")
    audit("violators, searched")
    page.goto(live_server + "/recalls")
    audit("recalled products")

    page.goto(live_server + path_of(codes["genuine"]))
    page.click('a[hreflang="en"]')  # the language switch: the same verdict in English
    page.wait_for_load_state()
    assert page.get_attribute("html", "lang") == "en"
    audit("verdict genuine, English")
    page.goto(live_server + "/")
    audit("scan, English")
    page.goto(live_server + "/no-such-page")
    audit("not found, English")
    audit.check()


def test_the_camera_verdict_written_into_the_scan_page(playwright, live_server, codes, tmp_path):  # noqa: F811
    """The camera's verdict is not a page of its own: static/js/app.js writes the server's fragment
    into the scan page (showVerdict). Audited as it stands then, with the focus on its heading, so
    that a screen reader reads the verdict out instead of staying on the hidden camera."""
    video = write_y4m(tmp_path / "label.y4m", label_png(codes["genuine"], codes.genuine_serial))
    with camera_phone(playwright, video) as page:
        page.goto(live_server + "/")
        page.wait_for_selector('[data-verdict="genuine"]', timeout=10_000)
        assert page.evaluate("document.activeElement.id") == "verdict-title"
        audit = Audit(page)
        audit("the camera's verdict")
        audit.check()


# -- the portal --------------------------------------------------------------------------------

def audit_menu(page, audit, role: str) -> None:
    """Every page in the role's menu (the account page included) not audited yet, opened one by one."""
    links = page.locator("nav.portal-nav a").evaluate_all("links => links.map(a => a.href)")
    assert links, "no portal menu: not logged in?"
    for url in links:
        if url not in audit.seen:
            page.goto(url)
            audit(f"{role} menu: {url.split('/portal/', 1)[1] or 'home'}")

def test_login_and_producer_pages(page, audit, live_server, codes, session, world):
    make_user(session, "producer1", "producer", world.producer_id)
    session.close()
    page.goto(live_server + "/portal/login")
    audit("login")
    page.fill("#username", "producer1")
    page.fill("#password", "not the password")
    page.click("#login-form button[type=submit]")
    page.wait_for_load_state()
    audit("login refused")

    page_login(page, live_server, "producer1")
    assert page.url.endswith("/portal/producer/")
    audit("producer batches")
    page.goto(live_server + "/portal/producer/batches/new")
    audit("register a batch")
    page.fill("#f-gtin", "08936000010011")  # a wrong check digit, the rest empty: every field marked
    page.click("#batch-form button[type=submit]")
    page.wait_for_selector("#f-gtin-error")
    audit("register a batch, with errors")
    page.goto(live_server + "/portal/producer/batches/08936000010010/LOT-1")
    page.fill("#count", "3")
    page.click("#serials-form button[type=submit]")
    page.wait_for_selector("#serials table")
    audit("batch with labels")
    audit_menu(page, audit, "producer")
    audit.check()


def _logged_in_with_a_case(page, live_server, session, codes, username: str, role: str) -> str:
    """A shopper's report filed (its case number returned) and ``username`` (``role``) logged in."""
    make_user(session, username, role)
    case = _file_report(session, codes["counterfeit"])
    session.close()  # release SQLite: the live server writes from its own thread
    page_login(page, live_server, username)
    return case


def test_inspector_pages(page, audit, live_server, codes, session):
    case = _logged_in_with_a_case(page, live_server, session, codes, "thanh", "inspector")
    page.goto(live_server + "/portal/inspector/")
    audit("inspector home")
    page.fill("#place", "Chợ Bến Thành, quầy 7")
    page.click("#open-form button[type=submit]")
    page.wait_for_selector("#inspector-data", state="attached")
    audit("inspection, empty")
    assert page.get_attribute("#photos", "aria-describedby") == "photos-hint"
    for verdict in ("genuine", "counterfeit"):
        page.fill("#code", codes[verdict])
        page.click("#code-form button[type=submit]")
        page.wait_for_selector(f'#checks li.check[data-verdict="{verdict}"]')
    audit("inspection with checks")
    audit_menu(page, audit, "inspector")
    page.goto(live_server + f"/portal/cases/{case}")
    audit("inspector case")
    audit.check()


def test_authority_pages(page, audit, live_server, codes, session):
    make_user(session, "thanh", "inspector")  # the accounts page then offers a new password for thanh
    case = _logged_in_with_a_case(page, live_server, session, codes, "boss", "authority")
    audit_menu(page, audit, "authority")
    page.goto(live_server + f"/portal/cases/{case}")
    audit("authority case")
    page.goto(live_server + "/portal/authority/audit")
    audit("audit trail")
    page.goto(live_server + "/portal/authority/audit?action=user.login")
    audit("audit trail, filtered")
    audit.check()


def test_the_audit_sees_a_real_violation(page, audit, live_server):
    """The audit itself, on the scan page with its code field's label taken away (what a broken
    template would serve): axe runs inside our CSP and the missing name fails."""
    page.goto(live_server + "/")
    page.evaluate("document.querySelector('label[for=typed-code]').remove()")
    audit("scan without the code field's label")
    assert any(" label [critical] on #typed-code " in line for line in audit.problems), audit.problems
