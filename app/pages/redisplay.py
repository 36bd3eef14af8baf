"""A verdict page shown again after its language switched is not a new check.

The language links lead through ``/lang/<lang>?next=<the page>``, which redirects back to the page:
for a verdict page (a Digital Link, ``/check?code=``) that load would verify the code again and
add a scan to its history, so each switch counted as one more check ("checked 2 times so far"
after one look in two languages), in the shopper's view and in the inspectors' evidence. The
switch therefore hands the browser a one-shot cookie naming the page, signed with ``SECRET_KEY``
and good for ``MAX_AGE`` seconds; the page's next load that carries it verifies the code as usual
(signatures, recalls, the history as it stands) and records nothing. Anyone can get such a cookie
for any page, and all it buys is a check that leaves no trace: nothing a clone detector needs,
since it counts the checks of shoppers who scanned.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from flask import Response, after_this_request, current_app, request
from itsdangerous import BadData, URLSafeTimedSerializer
from werkzeug.exceptions import HTTPException

__all__ = ["COOKIE", "MAX_AGE", "mark", "shown_again"]

COOKIE = "redisplay"
MAX_AGE = 60  # seconds: a redirect's round trip, with room for a slow phone link
_VERDICT_PAGES = {"pages.digital_link", "pages.check_text"}


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="verdict-redisplay")


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


def mark(response: Response, target: str) -> None:
    """``target`` (path and query) is a page shown again in another language: when it is a verdict
    page, its next load records no check."""
    if _is_verdict_page(target):
        response.set_cookie(COOKIE, _serializer().dumps(_same_page(target)), max_age=MAX_AGE, path="/",
                            samesite="Lax", secure=current_app.config["SESSION_COOKIE_SECURE"], httponly=True)


def shown_again() -> bool:
    """Whether this request shows a verdict again: it carries a valid cookie naming this very page.
    The cookie is spent either way (the response removes it)."""
    value = request.cookies.get(COOKIE)
    if value is None:
        return False
    after_this_request(_forget)
    try:
        named = _serializer().loads(value, max_age=MAX_AGE)
    except BadData:
        return False
    return named == _same_page(request.full_path)


def _forget(response: Response) -> Response:
    response.delete_cookie(COOKIE, path="/", samesite="Lax", secure=current_app.config["SESSION_COOKIE_SECURE"],
                           httponly=True)
    return response
