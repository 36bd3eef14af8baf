"""One id per shopper's browser, for every check made through the pages.

Clone detection counts the different clients that checked a unit. A verdict page opened from a
phone's camera app (``/01/...``) runs no script before the server answers, so it cannot send the
id the scan page's script kept; it was counted by address and browser instead, and a shopper who
then typed the same code on the scan page counted as a second device ("checked from 2 different
devices"). Now every page that verifies uses this browser's ``device`` cookie, and the scan and
report pages hand the same id to their script for the API calls it makes.

A browser without the cookie gets one derived from its address and User-Agent (salted), as its
checks were counted before: its first check and the ones after the cookie came back count as one
client, and a browser that keeps no cookies is still one client per address and browser, not a
new one at every reload.
"""

from __future__ import annotations

import hashlib
import re

from flask import after_this_request, current_app, g, request

__all__ = ["DEVICE_COOKIE", "device_id"]

DEVICE_COOKIE = "device"
_FORM = re.compile(r"d\.[0-9a-f]{32}")
_KEEP_SECONDS = 400 * 24 * 3600  # the longest a browser keeps a cookie (RFC 6265bis)


def device_id() -> str:
    """This browser's id (``d.`` and 32 hex digits), set as a cookie on this response if new."""
    known = g.get("device_id")
    if known is not None:
        return known
    value = request.cookies.get(DEVICE_COOKIE, "")
    if not _FORM.fullmatch(value):
        basis = f"{current_app.config['SCAN_SALT']}|device|{request.remote_addr}|{request.headers.get('User-Agent', '')}"
        value = "d." + hashlib.sha256(basis.encode()).hexdigest()[:32]

        @after_this_request
        def remember(response):  # noqa: ANN001, ANN202
            response.set_cookie(DEVICE_COOKIE, value, max_age=_KEEP_SECONDS, samesite="Lax", httponly=True,
                                secure=current_app.config["SESSION_COOKIE_SECURE"])
            return response

    g.device_id = value
    return value
