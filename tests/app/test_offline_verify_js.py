"""The browser's offline verifier (static/js/offline-verify.js) against the server's offline mode.

Each code is checked twice against the same signed trust list: by ``python -m app verify --offline
--json`` and by the ES module in a real Chromium. Verdicts, reason codes and note codes must be the
same, with the browser's WebCrypto Ed25519 and again with WebCrypto's Ed25519 taken away before the
page's scripts run, when the module falls back to the vendored @noble/ed25519
(static/js/vendor/noble-ed25519.js), loaded with import() under the app's strict CSP.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone

import pytest

from app.security import CSP
from keys.signing import Signer, sign_code
from registry.rules import yymmdd
from registry.services import SYSTEM
from verification.digital_link import build_url

from tests.app.browser import launch, playwright  # noqa: F401  (the fixture)
from tests.app.verdict_codes import tamper
from tests.conftest import GTIN, batch_data

OTHER_PREFIX_GTIN = "08937000000001"  # company part 8937000000...: not under 893600001
TEST_PAGE = "/__offline_verify_test__"
PAGE_HTML = """<!doctype html><meta charset="utf-8"><title>offline verify</title>
<script type="module">
import * as ov from '/static/js/offline-verify.js';
window.ov = ov;
document.title = 'ready';
</script>"""
# The same page as the app serves pages: no inline script, under the app's Content-Security-Policy.
CSP_PAGE_HTML = f"""<!doctype html><meta charset="utf-8"><title>offline verify</title>
<script type="module" src="{TEST_PAGE}.js"></script>"""
CSP_PAGE_JS = """import * as ov from '/static/js/offline-verify.js';
window.ov = ov;
document.title = 'ready';
"""
VENDORED = "/static/js/vendor/noble-ed25519.js"
# Run before any of the page's scripts: WebCrypto answers as a browser without Ed25519 does (the
# digest and every other algorithm still work), counts the refusals, and records CSP violations.
NO_WEBCRYPTO_ED25519 = """(() => {
  window.__ed25519Refused = 0;
  window.__cspViolations = [];
  document.addEventListener('securitypolicyviolation', (e) => {
    window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI);
  });
  const proto = SubtleCrypto.prototype;
  const isEd25519 = (alg) => alg === 'Ed25519' || (alg !== null && typeof alg === 'object' &&
                                                   String(alg.name).toLowerCase() === 'ed25519');
  const refuse = () => {
    window.__ed25519Refused++;
    return Promise.reject(new DOMException('Unrecognized name.', 'NotSupportedError'));
  };
  for (const [method, algAt] of [['importKey', 2], ['verify', 0], ['sign', 0], ['generateKey', 0]]) {
    const original = proto[method];
    proto[method] = function (...args) { return isEd25519(args[algAt]) ? refuse() : original.apply(this, args); };
  }
})();"""


def _gtin_with_check(body13: str) -> str:
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body13)))
    return body13 + str((10 - total % 10) % 10)


@pytest.fixture
def cases(registry, session, world):
    """The codes of every case, and the trust list they are checked against."""
    assert _gtin_with_check(OTHER_PREFIX_GTIN[:13]) == OTHER_PREFIX_GTIN
    signer = registry.keystore.load(world.kid)
    base = registry.base_url
    batch = registry.register_batch(SYSTEM, batch_data(lot="LOT/7&1"), producer_id=world.producer_id)
    (serial, s), = registry.issue_serials(SYSTEM, GTIN, "LOT/7&1", 1)
    unit = registry.serial_url(batch, serial, s)
    past = yymmdd(date.today() - timedelta(days=2))
    # A second key of the same producer, revoked after it signed a code.
    revoked = registry.certify_key(SYSTEM, world.producer_id)
    revoked_signer = registry.keystore.load(revoked.kid)
    revoked_url = build_url(base, gtin=GTIN, lot="LOT-9", serial="REV1",
                            s=sign_code(revoked_signer, gtin=GTIN, lot="LOT-9", serial="REV1"))
    registry.revoke_key(SYSTEM, revoked.kid, compromised_at=datetime.now(timezone.utc) - timedelta(hours=1))
    recalled = registry.register_batch(SYSTEM, batch_data(lot="LOT-R"), producer_id=world.producer_id)
    (r_serial, r_s), = registry.issue_serials(SYSTEM, GTIN, "LOT-R", 1)
    registry.recall(SYSTEM, GTIN, "LOT-R", reason="Nhiễm khuẩn Salmonella")  # before the list: it says so
    stranger = Signer.generate()
    codes = {
        "recalled unit": registry.serial_url(recalled, r_serial, r_s),
        "genuine unit": unit,
        "genuine batch": registry.batch_url(batch),
        "tampered signature": tamper(unit),
        "unknown key": build_url(base, gtin=GTIN, lot="LOT-1", serial="X1",
                                 s=sign_code(stranger, gtin=GTIN, lot="LOT-1", serial="X1")),
        "revoked key": revoked_url,
        "prefix not licensed": build_url(base, gtin=OTHER_PREFIX_GTIN, lot="LOT-1", serial="P1",
                                         s=sign_code(signer, gtin=OTHER_PREFIX_GTIN, lot="LOT-1", serial="P1")),
        "expired": build_url(base, gtin=GTIN, lot="LOT-OLD", serial="E1", exp=past,
                             s=sign_code(signer, gtin=GTIN, lot="LOT-OLD", serial="E1", exp=past)),
        "plain GTIN": GTIN,
        "unsigned element string": f"(01){GTIN}(10)LOT-1(21)ABC",
        "not a code": "hello, this is not a product code",
        "bad check digit": "https://verify.example.vn/01/08936000010011/10/LOT-1",
        # The parser's decisions, AI by AI of GS1's dictionary, as verification/parsing.py takes them.
        "another AI in the query": unit + "&99=abc",
        "net weight in a DL query": f"https://brand.example/01/{GTIN}/10/CF2026A?3103=000500",
        "bracketed (240)": f"(01){GTIN}(10)CF2026A(240)ABC",
        "FNC1 element string with (3103)": f"01{GTIN}\x1d10CF2026A\x1d3103000500",
        "]Q3 before a URI": "]Q3" + unit,
        "]Q1 before a URI": "]Q1" + unit,
        "]d2 element string": f"]d201{GTIN}10LOT-1\x1d",
        "]E0 GTIN-13": "]E0" + GTIN[1:],
        "convenience alphas": f"https://brand.example/gtin/{GTIN}/lot/LOT-1",
        "lot without a GTIN": "(10)LOT-1",
        "AI not in the dictionary": f"(01){GTIN}(10)LOT-1(299)X",
        "bad check digit of another AI": f"(01){GTIN}(10)LOT-1(414)8936000010011",
        "AI not a DL attribute": f"https://brand.example/01/{GTIN}/10/LOT-1?21=X1",
        "bad date in (11)": f"(01){GTIN}(10)LOT-1(11)261332",
        "FNC1 missing after the lot": f"01{GTIN}10LOT-117261231",
    }
    trust_list = registry.trust_list()
    # A key certified after the list was issued (a key rotation): unknown to the list, not forged.
    newer = registry.certify_key(SYSTEM, world.producer_id)
    codes["key newer than the list"] = build_url(base, gtin=GTIN, lot="LOT/7&1", s=sign_code(
        registry.keystore.load(newer.kid), gtin=GTIN, lot="LOT/7&1"))
    session.commit()
    session.close()
    return codes, trust_list


EXPECTED = {
    "recalled unit": "recalled", "genuine unit": "genuine", "genuine batch": "genuine", "tampered signature": "counterfeit",
    "unknown key": "unverifiable", "key newer than the list": "unverifiable", "revoked key": "suspect", "prefix not licensed": "counterfeit",
    "expired": "expired", "plain GTIN": "unverifiable", "unsigned element string": "unverifiable",
    "not a code": "unreadable", "bad check digit": "unreadable",
    "another AI in the query": "genuine", "net weight in a DL query": "unverifiable", "bracketed (240)": "unverifiable",
    "FNC1 element string with (3103)": "unverifiable", "]Q3 before a URI": "unreadable", "]Q1 before a URI": "genuine",
    "]d2 element string": "unverifiable", "]E0 GTIN-13": "unverifiable", "convenience alphas": "unverifiable",
    "lot without a GTIN": "unreadable", "AI not in the dictionary": "unreadable",
    "bad check digit of another AI": "unreadable", "AI not a DL attribute": "unreadable", "bad date in (11)": "unreadable",
    "FNC1 missing after the lot": "unverifiable",
}


def _summary(body: dict) -> dict:
    return {"verdict": body["verdict"], "reasons": [r["code"] for r in body["reasons"]],
            "notes": [n["code"] for n in body["notes"]],
            "code": None if body["code"] is None else {k: body["code"][k] for k in
                                                      ("gtin", "lot", "serial", "expiry", "kind", "signed")},
            "offline": body["offline"]}


# Cases whose reasons must also say the same thing (their ``detail``), not only carry the same codes.
SAME_DETAILS = ("unknown key", "key newer than the list")


def _server_verdicts(runner, codes: dict, trust_list: dict, tmp_path) -> dict:
    list_file = tmp_path / "trust-list.json"
    list_file.write_text(json.dumps(trust_list), encoding="utf-8")
    server = {}
    for name, text in codes.items():
        out = runner.invoke(args=["verify", text, "--offline", "--json", "--trust-list", str(list_file)])
        assert out.exit_code == 0, out.output
        server[name] = _summary(json.loads(out.output))
        if name in SAME_DETAILS:
            server[name]["details"] = [r.get("detail") for r in json.loads(out.output)["reasons"]]
        assert server[name]["verdict"] == EXPECTED[name], (name, server[name])
    return server


def _module_page(browser, app):  # noqa: ANN001, ANN202
    """A page of ``browser`` with the offline module loaded (as ``ov``), its scripts served by ``app``."""
    page = browser.new_page()
    origin = "http://127.0.0.1:9"  # never contacted: every route is answered here
    page.route(origin + "/**", lambda route: route.fulfill(
        status=200, content_type="text/html", body=PAGE_HTML) if route.request.url.endswith(TEST_PAGE)
        else route.fulfill(status=200, content_type="text/javascript",
                           body=app.test_client().get(route.request.url[len(origin):]).data))
    page.goto(origin + TEST_PAGE)
    page.wait_for_function("document.title === 'ready'")
    return page


def _forged(trust_list: dict) -> dict:
    """The trust list with one key's status changed after signing."""
    forged = json.loads(json.dumps(trust_list))
    key = forged["producers"][0]["keys"][0]
    key["status"] = "active" if key["status"] != "active" else "revoked"
    return forged


def _browser_verdicts(playwright, app, codes: dict, trust_list: dict, *, init_script: str | None = None,  # noqa: F811
                      strict_csp: bool = False) -> dict:
    """Load the module in Chromium and check every code there; also what the page fetched, which
    Ed25519 implementation it used, and whether a forged trust list was refused."""
    browser = launch(playwright)
    try:
        page = browser.new_page()
        if init_script:
            page.add_init_script(init_script)
        origin = "http://127.0.0.1:9"  # never contacted: every route is answered here
        fetched = []

        def serve(route):
            path = route.request.url[len(origin):]
            fetched.append(path)
            if path == TEST_PAGE:
                headers = {"Content-Security-Policy": CSP} if strict_csp else {}
                route.fulfill(status=200, content_type="text/html", headers=headers,
                              body=CSP_PAGE_HTML if strict_csp else PAGE_HTML)
            elif path == TEST_PAGE + ".js":
                route.fulfill(status=200, content_type="text/javascript", body=CSP_PAGE_JS)
            else:
                response = app.test_client().get(path)
                route.fulfill(status=response.status_code, content_type=response.mimetype, body=response.data)

        page.route(origin + "/**", serve)
        page.goto(origin + TEST_PAGE)
        if strict_csp:  # wait_for_function may eval, which this CSP refuses: poll the title instead
            for _ in range(100):
                if page.title() == "ready":
                    break
                page.wait_for_timeout(100)
            assert page.title() == "ready", _load_failure(page)
        else:
            page.wait_for_function("document.title === 'ready'")
        supported = page.evaluate("ov.supportsEd25519()")
        results = page.evaluate("""async ([doc, codes]) => {
            const list = await ov.loadTrustList(doc);
            const out = {};
            for (const [name, text] of Object.entries(codes)) out[name] = await ov.verifyOffline(text, list);
            return out;
        }""", [trust_list, codes])
        refused = page.evaluate("""async (doc) => {
            try { await ov.loadTrustList(doc); return null; } catch (e) { return e.message; } }""", _forged(trust_list))
        return {"supported": supported, "results": results, "refused": refused, "fetched": fetched,
                "backend": page.evaluate("ov.ed25519Backend()"),
                "ed25519_refused": page.evaluate("window.__ed25519Refused ?? null"),
                "csp_violations": page.evaluate("window.__cspViolations ?? null")}
    finally:
        browser.close()


def _load_failure(page) -> str:
    return f"the page did not load its module: CSP violations {page.evaluate('window.__cspViolations ?? null')}"


def _assert_same_as_server(run: dict, server: dict, codes: dict, trust_list: dict) -> None:
    for name in codes:
        summary = _summary(run["results"][name])
        if name in SAME_DETAILS:
            summary["details"] = [r.get("detail") for r in run["results"][name]["reasons"]]
        assert summary == server[name], name
    newer = run["results"]["key newer than the list"]["reasons"][0]["detail"]
    assert trust_list["issued_at"] in newer and "refresh the trust list" in newer
    assert run["supported"] is True
    assert run["refused"] and "signature" in run["refused"]
    assert run["results"]["genuine unit"]["code"]["lot"] == "LOT/7&1"  # percent-decoded
    assert run["results"]["genuine unit"]["trust_list_issued_at"] == trust_list["issued_at"]


def test_browser_offline_verdicts_match_the_server(playwright, app, runner, cases, tmp_path):  # noqa: F811
    codes, trust_list = cases
    server = _server_verdicts(runner, codes, trust_list, tmp_path)
    run = _browser_verdicts(playwright, app, codes, trust_list)
    _assert_same_as_server(run, server, codes, trust_list)
    # This Chromium has WebCrypto Ed25519: the vendored library is not even fetched.
    assert run["backend"] == "webcrypto"
    assert VENDORED not in run["fetched"]


def test_browser_without_webcrypto_ed25519_falls_back_to_the_vendored_library(
        playwright, app, runner, cases, tmp_path):  # noqa: F811
    codes, trust_list = cases
    server = _server_verdicts(runner, codes, trust_list, tmp_path)
    run = _browser_verdicts(playwright, app, codes, trust_list, init_script=NO_WEBCRYPTO_ED25519, strict_csp=True)
    # WebCrypto's Ed25519 was asked (the probe) and refused; the vendored module did the work.
    assert run["ed25519_refused"] >= 1
    assert run["backend"] == "noble"
    assert run["fetched"].count(VENDORED) == 1  # imported once, lazily
    assert run["csp_violations"] == []
    _assert_same_as_server(run, server, codes, trust_list)
    verdicts = {name: run["results"][name]["verdict"] for name in codes}
    assert verdicts["genuine unit"] == verdicts["genuine batch"] == "genuine"
    assert verdicts["tampered signature"] == "counterfeit"
    assert [r["code"] for r in run["results"]["tampered signature"]["reasons"]] == ["SIGNATURE_INVALID"]
    assert verdicts["revoked key"] == "suspect"
    assert run["results"]["genuine unit"]["producer"] is not None


def test_canonical_json_matches_rfc8785(playwright, app):  # noqa: F811
    import rfc8785

    samples = [{"t": "unit", "gtin": GTIN, "lot": "Lô-1 \"x\"\\\u0001", "serial": "€\U0001F600", "exp": "261231"},
               {"b": [1, 2.5, None, True], "a": {"z": "", "é": "\u2028"}, "10": 0, "1": -0.0}]
    browser = launch(playwright)
    try:
        page = _module_page(browser, app)
        for sample in samples:
            assert page.evaluate("(o) => ov.canonicalJSON(o)", sample).encode() == rfc8785.dumps(sample)
    finally:
        browser.close()


def test_the_browsers_gs1_dictionary_is_the_servers():
    """static/js/gs1-syntax.js is generated from the dictionary verification/parsing.py reads."""
    import subprocess
    import sys

    from tests.conftest import REPO

    done = subprocess.run([sys.executable, str(REPO / "tools" / "gs1_syntax_js.py"), "--check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def _filler(entry) -> str:
    """A value of the AI's format: digits or letters of each component's longest length."""
    value = ""
    for c in entry.components:
        value += ("1" if c.charset == "N" else "A") * c.max_length
    return value


def _parser_corpus() -> list[str]:
    from verification.gs1 import get_dictionary

    texts = []
    for ai, entry in sorted(get_dictionary().entries.items()):
        value = _filler(entry)
        texts += [f"(01){GTIN}(10)LOT-1({ai}){value}", f"01{GTIN}10LOT-1\x1d{ai}{value}",
                  f"https://brand.example/01/{GTIN}/10/LOT-1?{ai}={value}", f"https://brand.example/{ai}/{value}"]
    texts += ["", "   ", "]Q3", "]Q3(01)" + GTIN, "]C1" + "01" + GTIN, "]e0" + "01" + GTIN, "]E4" + GTIN[6:],
              "]E3" + GTIN[1:] + "12", "]I1" + GTIN, "]A0" + GTIN, "]zz" + GTIN, "HTTPS://BRAND.EXAMPLE/01/" + GTIN,
              "Https://brand.example/01/" + GTIN, "ftp://brand.example/01/" + GTIN, "https://brand.example/01/x",
              "https://br@nd.example/01/" + GTIN, "https://brand.example/01/" + GTIN + "/10/a%2",
              "https://brand.example/01/" + GTIN + "/10/a%00", "https://brand.example/01/" + GTIN + "?17=261231&17=261231",
              "https://brand.example/01/" + GTIN[1:] + "/21/X", "https://brand.example/gtin/" + GTIN + "/ser/A1",
              "https://brand.example/01/" + GTIN + "/21/A/10/B", "https://brand.example/01/" + GTIN + "/10/B/21/A?s=a&s=b",
              "(01)" + GTIN + "(10)A(10)B", "(01)" + GTIN + "(10)A\\(B", "(01)" + GTIN + "(17)261200", "(01)" + GTIN + "(17)261300",
              "01" + GTIN + "\x1d\x1d10A\x1d", "01" + GTIN + "10A\x1d21B", "\x1d01" + GTIN, "01" + GTIN[:10],
              "8936000010010", "893600001001", "12345", "1234567x", "(8030)AAAA(01)" + GTIN, "(01)" + GTIN + "(02)" + GTIN,
              " " + GTIN + "\n", "(01)" + GTIN + "(10)A(17)260229",
              # FNC1 missing after a variable-length value: split as the server splits it, or not
              "01" + GTIN + "10LOT-117261231", "01" + GTIN + "21SER1710261231", "01" + GTIN + "10AB1726123121X",
              "01" + GTIN + "10LOT-11726133", "]d201" + GTIN + "10LOT117261231\x1d21S", "01" + GTIN + "10A" + "0" + GTIN,
              "01" + GTIN + "21ABC\x1d10LOT17261231", "10ABC01" + GTIN, "01" + GTIN + "10X1126010117261231"]
    return texts


def _python_parse(text: str) -> dict:
    from verification.parsing import MalformedCode, parse_code

    try:
        code = parse_code(text)
    except MalformedCode as exc:
        return {"reason": exc.reason}
    return {"gtin": code.gtin, "lot": code.lot, "serial": code.serial,
            "expiry": code.expiry.isoformat() if code.expiry else None, "notes": sorted(code.notes)}


def test_browser_parser_matches_the_server_parser(playwright, app):  # noqa: F811
    """Every AI of the dictionary, in brackets, with FNC1 and in a Digital Link, and the symbology
    identifiers and slips the server reads: the browser's parseCode decides as parse_code does
    and the split of a value that ran into the next AI for want of an FNC1."""
    texts = _parser_corpus()
    expected = [_python_parse(text) for text in texts]
    browser = launch(playwright)
    try:
        page = _module_page(browser, app)
        got = page.evaluate("""(texts) => texts.map((text) => {
            try {
                const c = ov.parseCode(text);
                return {gtin: c.gtin, lot: c.lot, serial: c.serial, expiry: c.expiry, notes: [...c.notes].sort()};
            } catch (e) {
                if (!(e instanceof ov.MalformedCode)) return {error: String(e)};
                return {reason: e.reason};
            }
        })""", texts)
    finally:
        browser.close()
    differ = [(text, want, have) for text, want, have in zip(texts, expected, got, strict=True) if want != have]
    assert not differ, f"{len(differ)} of {len(texts)} differ, e.g. {differ[:5]}"
    assert sum("reason" not in e for e in expected) > 500  # most of the corpus parses
