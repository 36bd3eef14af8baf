"""Building the GS1 Digital Link URI that is printed on goods (DESIGN.md, "What is printed")."""

from __future__ import annotations

from urllib.parse import quote, urlsplit

__all__ = ["build_url", "host_of", "same_host"]


def _segment(value: str) -> str:
    # Digital Link: every character outside RFC 3986's unreserved set is percent-encoded.
    return quote(value, safe="")


def build_url(
    base_url: str,
    *,
    gtin: str,
    lot: str,
    serial: str | None = None,
    exp: str | None = None,
    s: str | None = None,
) -> str:
    """``{base}/01/{gtin}/10/{lot}[/21/{serial}][?17=YYMMDD][&s=kid.sig]``."""
    url = f"{base_url.rstrip('/')}/01/{gtin}/10/{_segment(lot)}"
    if serial is not None:
        url += f"/21/{_segment(serial)}"
    query = []
    if exp:
        query.append(f"17={exp}")
    if s:
        query.append(f"s={s}")
    if query:
        url += "?" + "&".join(query)
    return url


_DEFAULT_PORTS = (":80", ":443")


def same_host(host: str) -> str:
    """A URI's host as hosts are compared: lower case, without the scheme's default port (a code
    printed as ``HTTPS://X.VN:443/01/...`` is on ``x.vn``)."""
    host = host.lower()
    for port in _DEFAULT_PORTS:
        if host.endswith(port):
            return host[: -len(port)]
    return host


def host_of(base_url: str) -> str:
    """The host that codes built on ``base_url`` are printed under (``same_host``)."""
    return same_host(urlsplit(base_url).netloc)
