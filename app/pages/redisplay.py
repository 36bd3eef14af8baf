"""A verdict page shown again after its language switched is not a new check.

The language links lead through ``/lang/<lang>?next=<the page>``, which redirects back to the page:
for a verdict page (a Digital Link, ``/check?code=``) that load verifies the code again, and it
had added a scan to the history each time ("checked 2 times so far" after one look in two
languages), in the shopper's view and in the inspectors' evidence.

So a verdict page's language links carry a token (``shown``) signed with ``SECRET_KEY``: this page
was just shown to this browser (the salted hash of its address and User-Agent, as a scan without
a client id is counted), good for ``LINK_MAX_AGE``. The switch, given a token for its own ``next``
and the same browser, hands it a one-shot cookie naming the page for ``MAX_AGE`` seconds; the
page's next load that carries it verifies the code as usual (signatures, recalls, the history as
it stands) and records nothing. A link made elsewhere (a seller's page sending shoppers through
``/lang`` so that their checks leave no trace for clone detection) has no token for their
browser, and counts as usual. A verdict read from a photo (``POST /check``) cannot be loaded
again: its links lead to the same code's ``/check?code=`` page instead.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from flask import Response, after_this_request, current_app, request
from itsdangerous import BadData, URLSafeTimedSerializer
from werkzeug.exceptions import HTTPException

__all__ = ["COOKIE", "MAX_AGE", "LINK_MAX_AGE", "link_token", "mark", "shown_again"]

COOKIE = "redisplay"
MAX_AGE = 60  # seconds from the switch to the page's load: a redirect, with room for a slow link
LINK_MAX_AGE = 30 * 60  # seconds from the check to the switch: the time to read the page
_VERDICT_PAGES = {"pages.digital_link", "pages.check_text"}


def _serializer(purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=f"verdict-redisplay-{purpose}")


def _same_page(path: str) -> str:
    """Path and query as compared: the percent-encoding a redirect may add or remove is not part
    of what names the page."""
    return unquote(path).rstrip("?")


def _is_verdict_page(target: str) -> bool:
    try:
        endpoint, _ = current_app.url_map.bind("localhost").match(urlsplit(target).path, method="GET")
    except HTTPException:
        return False
    return endpoint in _VERDICT_PAGES


def _loads(purpose: str, value: str | None, max_age: int) -> list | None:
    if not value:
        return None
    try:
        loaded = _serializer(purpose).loads(value, max_age=max_age)
    except BadData:
        return None
    return loaded if isinstance(loaded, list) and len(loaded) == 2 else None


def _browser() -> str | None:
    from app.services import scan_context  # the one place that hashes a client

    return scan_context("link", {}).client


def link_token(page: str | None = None) -> str | None:
    """The token a verdict page's language links carry: ``page`` (this GET request's page unless
    given) was just shown to this browser."""
    if page is None and request.method != "GET":
        return None
    return _serializer("link").dumps([_same_page(page or request.full_path), _browser()])


def mark(response: Response, target: str, token: str | None) -> None:
    """The language switch to ``target``: given a token for that verdict page and this browser, the
    page's next load shows the same check again."""
    shown = [_same_page(target), _browser()]
    if _loads("link", token, LINK_MAX_AGE) != shown or not _is_verdict_page(target):
        return
    response.set_cookie(COOKIE, _serializer("cookie").dumps(shown), max_age=MAX_AGE, path="/",
                        samesite="Lax", secure=current_app.config["SESSION_COOKIE_SECURE"], httponly=True)


def shown_again() -> bool:
    """Whether this request shows a verdict again: it carries a valid cookie naming this very page
    and browser. The cookie is spent either way (the response removes it)."""
    value = request.cookies.get(COOKIE)
    if value is None:
        return False
    after_this_request(_forget)
    return _loads("cookie", value, MAX_AGE) == [_same_page(request.full_path), _browser()]


def _forget(response: Response) -> Response:
    response.delete_cookie(COOKIE, path="/", samesite="Lax", secure=current_app.config["SESSION_COOKIE_SECURE"],
                           httponly=True)
    return response
