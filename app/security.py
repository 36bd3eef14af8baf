"""HTTP security headers (a strict Content-Security-Policy with no inline script), where a
redirect may lead, and secrets sealed for the browser's session cookie."""

from __future__ import annotations

import os
from typing import Callable
from urllib.parse import urlparse

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import Flask, Request, Response, current_app, request
from flask.sessions import SecureCookieSessionInterface

from keys.encoding import b64url_decode, b64url_encode

__all__ = ["security_headers", "ApiWithoutCookies", "local_target", "request_target", "answers_data", "HSTS", "seal",
           "unseal"]

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
       "frame-ancestors 'none'; form-action 'self'")


HEADERS = (("Content-Security-Policy", CSP), ("X-Content-Type-Options", "nosniff"),
           ("Referrer-Policy", "same-origin"), ("X-Frame-Options", "DENY"),
           ("Permissions-Policy", "camera=(self), geolocation=(self)"))

# The API answers data (JSON, PNG and PDF labels, CSV), never a page: nothing in it may load,
# run or be framed (OWASP REST Security Cheat Sheet, "Security headers"). Shorter than the pages'
# set, which would only describe a document.
DATA_HEADERS = (("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
                ("X-Content-Type-Options", "nosniff"), ("X-Frame-Options", "DENY"))

# The API's answers besides. No cache keeps them (a verification is counted and its counts change
# with every check; tokens, cases and contacts are private) unless the view says otherwise. Any
# web page may call the API from its own origin (a marketplace's product page verifying a code,
# an agency's dashboard): the API authenticates by bearer token alone, never a cookie, so a page
# elsewhere can do only what the token it holds allows, as any other client (CORS, "*" without
# credentials). A preflight (OPTIONS) also learns the methods and headers it may send. The CORS
# headers go only to requests a browser sent from a page (they carry Origin), as flask-cors does:
# other clients never read them, and GET /verify is the hot path (bench/http_load.py).
API_HEADERS = DATA_HEADERS + (("Cache-Control", "no-store"),)
CORS_HEADERS = (("Access-Control-Allow-Origin", "*"),
                ("Access-Control-Expose-Headers", "Link, GS1-Next-Page-Token, Retry-After, X-Request-ID, "
                                                  "Content-Disposition"))
PREFLIGHT_HEADERS = (("Access-Control-Allow-Methods", "GET, POST, DELETE"),
                     ("Access-Control-Allow-Headers", "Authorization, Content-Type"),
                     ("Access-Control-Max-Age", "86400"))


#: In production (APP_ENV=production, whose BASE_URL is https): browsers that once reached the
#: service keep to https for two years, so a network in between (a market's Wi-Fi) cannot answer
#: a shopper who types the address in its place with a page of its own saying "genuine". Sent on
#: every answer (over plain http browsers ignore it, RFC 6797 8.1); not includeSubDomains, which
#: would bind every other site under the same domain.
HSTS = ("Strict-Transport-Security", "max-age=63072000")

#: The load balancer's probes (app.health): data, as the API's answers.
PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def answers_data(path: str) -> bool:
    """Whether ``path`` is the API's or a probe's: JSON answers (errors too), the data headers, no
    cookie session."""
    return path.startswith("/api/") or path in PROBE_PATHS


def security_headers(app: Flask) -> Callable[[Response], Response]:
    """The ``after_request`` function that adds the headers (``HSTS`` too in production) to each
    answer, unless the view set its own (one pass over the headers, not one per header)."""
    hsts = (HSTS,) if app.config["APP_ENV"] == "production" else ()
    page_headers, probe_headers, api_headers = HEADERS + hsts, DATA_HEADERS + hsts, API_HEADERS + hsts
    cors_headers = api_headers + CORS_HEADERS
    preflight_headers = cors_headers + PREFLIGHT_HEADERS

    def add_security_headers(response: Response) -> Response:
        path = request.path
        if path.startswith("/api/"):
            if "HTTP_ORIGIN" not in request.environ:
                headers = api_headers
            else:
                headers = preflight_headers if request.method == "OPTIONS" else cors_headers
        else:
            headers = probe_headers if path in PROBE_PATHS else page_headers
        present = {name.lower() for name in response.headers.keys()}
        response.headers.extend([(name, value) for name, value in headers if name.lower() not in present])
        return response

    return add_security_headers


class ApiWithoutCookies(SecureCookieSessionInterface):
    """The API authenticates with bearer tokens only: its requests get no cookie session (nothing
    to verify or sign on the hot path, and no cookie a browser could ride on). A write to
    ``session`` under /api/ fails loudly instead of being silently dropped."""

    def open_session(self, app: Flask, request: Request):  # noqa: ANN201
        if answers_data(request.path):
            return self.null_session_class()
        return super().open_session(app, request)


def local_target(target: str | None, *, under: str = "/") -> str | None:
    """``target`` (a ``next`` parameter) if it is a path on this site under ``under``, else None:
    never an open redirect (no scheme, no host, no ``//``), and nothing a Location header cannot
    carry (a control character such as an encoded CR/LF had made the redirect a 500)."""
    if not target or not target.startswith(under) or target.startswith("//"):
        return None
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in target):
        return None
    parsed = urlparse(target)
    return None if parsed.scheme or parsed.netloc else target


def request_target() -> str:
    """This request's path and query as the client sent them, percent-encoding kept: Flask's
    ``full_path`` decodes the path, so a lot holding an encoded ``?``, ``/`` or ``%`` came back
    from a ``next`` as another address (after a login, a "not found")."""
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or ""
    path = raw.split("?", 1)[0]  # some servers give the path alone (Werkzeug's test client)
    if not path.startswith("/") or path.startswith("//"):
        return request.full_path.rstrip("?")
    query = request.query_string.decode("latin-1")
    return path + ("?" + query if query else "")


def _sealing_key(purpose: str) -> AESGCM:
    secret = current_app.config["SECRET_KEY"]
    secret = secret.encode() if isinstance(secret, str) else secret
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=f"origin-seal:{purpose}".encode()).derive(secret)
    return AESGCM(key)


def seal(value: str, purpose: str) -> str:
    """``value`` encrypted (AES-GCM under a key derived from ``SECRET_KEY`` for ``purpose``), for
    the session cookie, which Flask signs but does not encrypt: a secret shown once on the page
    after a redirect (a new API token) must not travel readable in a cookie, where proxies and
    logs may keep it."""
    nonce = os.urandom(12)
    return b64url_encode(nonce + _sealing_key(purpose).encrypt(nonce, value.encode(), purpose.encode()))


def unseal(sealed: object, purpose: str) -> str | None:
    """What ``seal`` sealed for the same purpose; None for anything else (altered, another key)."""
    try:
        raw = b64url_decode(str(sealed))
        return _sealing_key(purpose).decrypt(raw[:12], raw[12:], purpose.encode()).decode()
    except (ValueError, InvalidTag):  # MalformedEncoding and UnicodeDecodeError are ValueErrors
        return None
