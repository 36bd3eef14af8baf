"""A reference for each request the log says something about.

Every log line written while serving a request carries the request's reference (``[3f9c0a6e51d2b7c4]``
in the log format), the answer names it in ``X-Request-ID``, gunicorn's access log line ends with
it, and a 5xx answer shows it (``error.reference`` in JSON, a line on the page): what a shopper, a
producer or a partner agency's system quotes from an error leads to its log lines. A 5xx that no
handler logged gets one line here (``error_reference``), so that no reference leads nowhere.

Behind a proxy that names its requests (``TRUSTED_PROXIES`` of 1 or more, nginx sending
``proxy_set_header X-Request-ID $request_id``), the proxy's name is kept, so its log and ours
agree; without one, a client's header is not taken (it could make its lines look like another's).

A reference is made when first asked for, and only then is the header added: a request that logs
nothing and answers well (nearly every verification) makes none and pays nothing for it.
"""

from __future__ import annotations

import logging
import re
import secrets

from flask import Response, after_this_request, current_app, g, has_request_context, request

__all__ = ["HEADER", "request_id", "error_reference", "init_request_ids", "LOG_FORMAT"]

HEADER = "X-Request-ID"
#: What a proxy's reference may be to be kept: nginx's ``$request_id`` is 32 hex digits, others
#: use UUIDs; nothing that could break a log line or a header.
_SAFE = re.compile(r"[A-Za-z0-9._:-]{1,64}")
#: The app's log lines (``app.create_app``), with the reference of the request they were written
#: in (``-`` outside one: start-up, the scan writer's thread, commands).
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"

log = logging.getLogger(__name__)


def request_id() -> str:
    """This request's reference: the trusted proxy's, or made now (16 hex digits), the same for
    the rest of the request, and named in its answer's ``X-Request-ID``."""
    reference = g.get("_request_id")
    if reference is None:
        given = request.headers.get(HEADER, "") if current_app.config["TRUSTED_PROXIES"] else ""
        reference = g._request_id = given if _SAFE.fullmatch(given) else secrets.token_hex(8)
        after_this_request(_send_reference)
    return reference


def error_reference(status: int) -> str:
    """The reference a 5xx answer shows: the request's, under which the log has at least one line
    (this one, when the handler that made the answer logged nothing)."""
    reference = request_id()
    if not g.get("_request_logged"):
        log.warning("%s %s answered %d", request.method, request.path, status)
    return reference


def _send_reference(response: Response) -> Response:
    response.headers[HEADER] = g._request_id
    return response


def _with_request_id(make_record):  # noqa: ANN001, ANN202 - logging's record factory
    def factory(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        record = make_record(*args, **kwargs)
        if has_request_context():
            record.request_id = request_id()
            g._request_logged = True
        else:
            record.request_id = "-"
        return record

    factory.adds_request_id = True
    return factory


def init_request_ids() -> None:
    """Log records made while serving a request carry its reference, whatever their logger and
    handler (once per process)."""
    if not getattr(logging.getLogRecordFactory(), "adds_request_id", False):
        logging.setLogRecordFactory(_with_request_id(logging.getLogRecordFactory()))
