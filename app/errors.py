"""The one mapping from errors to JSON (or HTML) responses: ``{"error": {"code", "message"}}``."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, jsonify, make_response, request
from marshmallow import Schema, fields
from sqlalchemy.exc import IntegrityError, InternalError, OperationalError
from werkzeug.exceptions import Conflict as HttpConflict
from werkzeug.exceptions import HTTPException, InternalServerError, MethodNotAllowed, ServiceUnavailable
from werkzeug.exceptions import NotFound as NoRoute

from app.request_ids import error_reference
from app.responses import RepeatedMember
from app.security import answers_data
from registry.errors import (Conflict, Forbidden, Invalid, InvalidFields, NotFound, RegistryError, Unauthorized,
                             Unavailable)
from verification.decoding import ImageEmpty, ImageRejected, NotAnImage

__all__ = ["register_error_handlers", "ErrorSchema", "database_refusal", "log_unavailable", "error_response",
           "handle_registry_error", "handle_http_error", "ApiError", "summary", "field_problems", "image_status"]

log = logging.getLogger(__name__)

READ_ONLY_SQLSTATE = "25006"  # PostgreSQL's read_only_sql_transaction

STATUS_BY_ERROR: list[tuple[type[RegistryError], int]] = [
    (NotFound, 404),
    (Conflict, 409),
    (Forbidden, 403),
    (Unauthorized, 401),
    (Invalid, 422),
    (Unavailable, 503),
]



def image_status(exc: ImageRejected) -> int:
    """A photo refused: 400 when the file is empty, 415 when it is not an image, 422 otherwise
    (damaged, too many pixels)."""
    if isinstance(exc, ImageEmpty):
        return 400
    return 415 if isinstance(exc, NotAnImage) else 422


class ApiError(Exception):
    """An error raised by the web layer itself (bad upload, missing field)."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


class ErrorProblemSchema(Schema):
    code = fields.String(required=True)
    field = fields.String(allow_none=True)
    message = fields.String(required=True)


class ErrorDetailSchema(Schema):
    code = fields.String(required=True, metadata={"description": "what went wrong, for programs: `BAD_CHECK_DIGIT`, "
                                                                 "`VALIDATION_FAILED`, `SERVICE_UNAVAILABLE`..."})
    message = fields.String(required=True, metadata={"description": "the same, for people (English)"})
    field = fields.String(metadata={"description": "the field at fault, when one is"})
    field_errors = fields.Dict(data_key="fields", metadata={
        "description": "each field at fault with what is wrong with it (a request that does not match its schema)"})
    problems = fields.List(fields.Nested(ErrorProblemSchema),
                           metadata={"description": "every rule a registration breaks, the first also as `code`"})
    reference = fields.String(metadata={"description": "a 5xx's reference, under which the server's log has it "
                                                      "(also sent as `X-Request-ID`)"})


class ErrorSchema(Schema):
    """What ``error_response`` answers, for the OpenAPI document (``app.extensions.api``)."""

    error = fields.Nested(ErrorDetailSchema, required=True)


def error_response(status: int, code: str, message: str, **extra: Any):
    """The API's error answer; a 5xx also gives the request's ``reference``, under which the log
    has it (``app.request_ids``)."""
    if status >= 500:
        extra["reference"] = error_reference(status)
    body: dict[str, Any] = {"error": {"code": code, "message": message, **extra}}
    response = jsonify(body)
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


def _wants_html() -> bool:
    if answers_data(request.path):
        return False
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "text/html"


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(RegistryError, handle_registry_error)

    @app.errorhandler(ApiError)
    def _api(exc: ApiError):
        return error_response(exc.status, exc.code, exc.message, **exc.extra)

    app.register_error_handler(HTTPException, handle_http_error)

    # The database's own refusals, when no service turned them into a RegistryError: a constraint
    # met by a write made at the same time is a conflict to retry, and a deadlock, a lost
    # connection or a busy database is the service being briefly unavailable, not a 500.
    @app.errorhandler(IntegrityError)
    def _integrity(exc: IntegrityError):
        log.warning("a write on %s %s conflicted with another: %s", request.method, request.path, exc.orig)
        return handle_http_error(HttpConflict("the request conflicts with a record written at the same time: "
                                              "reload it and retry"))

    @app.errorhandler(OperationalError)
    def _unavailable(exc: OperationalError):
        message, retry_after, waited = database_refusal(exc)
        if waited:  # the database is well; one statement waited too long (the log says which)
            log.warning("%s %s: %s (%s)", request.method, request.path, str(exc.orig).splitlines()[0],
                        (exc.statement or "").split("\n")[0][:120])
        else:
            log.exception("the database refused %s %s", request.method, request.path)
        return handle_http_error(ServiceUnavailable(message, retry_after=retry_after))

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        if _wants_html():  # a page or a portal form: a page, in its language
            from app.pages.render import render_error

            return make_response(render_error(500, page_message(InternalServerError())), 500)
        return error_response(500, "INTERNAL_ERROR",
                              "an internal error occurred; it has been logged under its reference")

    # A database that takes no writes (a PostgreSQL standby named by mistake, or one put read-only
    # during a failover or maintenance) refuses each write with read_only_sql_transaction: the
    # writes are unavailable for a while, the service is not broken (it had been a 500).
    @app.errorhandler(InternalError)
    def _read_only(exc: InternalError):
        if getattr(exc.orig, "sqlstate", None) != READ_ONLY_SQLSTATE:
            return _unexpected(exc)
        log.error("the database takes no writes (%s %s): %s", request.method, request.path, exc.orig)
        return handle_http_error(ServiceUnavailable("the database takes no writes right now (a standby, or a "
                                                    "failover in progress): retry in a moment", retry_after=5))


#: PostgreSQL's SQLSTATEs for a statement that waited too long: lock_not_available (``lock_timeout``)
#: and query_canceled (``statement_timeout``, or an operator's ``pg_cancel_backend``).
LOCK_TIMEOUT_SQLSTATE, STATEMENT_TIMEOUT_SQLSTATE = "55P03", "57014"


def database_refusal(exc: OperationalError) -> tuple[str, int, bool]:
    """What the database's refusal means for whoever asked (a sentence), in how many seconds to
    try again, and whether it was a statement that waited too long (``registry.db``'s lock and read
    timeouts; SQLite's busy timeout) rather than a database busy, lost or unreachable."""
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate == LOCK_TIMEOUT_SQLSTATE or str(exc.orig) == "database is locked":  # SQLite's words
        return ("another write holds what this one needs, for longer than the service waits: retry in a moment",
                5, True)
    if sqlstate == STATEMENT_TIMEOUT_SQLSTATE:
        return "the database took too long to answer: retry in a moment", 5, True
    return "the database is busy or unreachable: retry in a moment", 1, False


def handle_registry_error(exc: RegistryError):
    """A domain error as JSON, or as a page for a page's form or address (the portals answer their
    own, ``app.portal.errors``)."""
    status = next((s for cls, s in STATUS_BY_ERROR if isinstance(exc, cls)), 400)
    if status >= 500:
        log_unavailable(exc)
    if _wants_html():
        from flask_babel import gettext

        from app.pages.render import render_error
        from app.pages.texts import FIELD_ERROR, HTTP_ERROR

        text = FIELD_ERROR.get(exc.code) or HTTP_ERROR.get(status) or HTTP_ERROR[500 if status >= 500 else 400]
        return make_response(render_error(status, gettext(text)), status)
    extra: dict[str, Any] = {"field": exc.field} if exc.field else {}
    if isinstance(exc, InvalidFields):  # every field's problem, the first one also as above
        extra["problems"] = [{"code": p.code, "field": p.field, "message": p.message} for p in exc.problems]
    return error_response(status, exc.code, exc.message, **extra)


def log_unavailable(exc: RegistryError) -> None:
    """A registry error that is the service's, not the request's (``Unavailable``: the keys cannot
    be opened), in the log under the request's reference, which the answer shows."""
    log.warning("%s %s: %s: %s", request.method, request.path, exc.code, exc.message)


def handle_http_error(exc: HTTPException):
    """An HTTP error as JSON (the API, and clients that do not ask for HTML) or as a page."""
    status = exc.code or 500
    code = (exc.name or "error").upper().replace(" ", "_").replace("'", "")
    message = exc.description or exc.name
    allowed = getattr(exc, "valid_methods", None)  # a 405: what the address takes (RFC 9110's Allow)
    if isinstance(exc, NoRoute) and exc.description == NoRoute.description:  # no route: werkzeug's words
        message = f"no such address: {request.path}" + (
            " (the API's are listed in /api/v1/openapi.json)" if request.path.startswith("/api/") else "")
    elif isinstance(exc, MethodNotAllowed) and allowed:
        message = f"{request.path} does not take {request.method}; it takes {', '.join(sorted(allowed))}"
    extra: dict[str, Any] = {}
    data = getattr(exc, "data", None)  # webargs/marshmallow validation details
    if isinstance(data, dict) and data.get("messages"):
        extra["fields"] = data["messages"]
        if status == 422:
            code, message = "VALIDATION_FAILED", "the request does not match the schema: " + summary(data["messages"])
    if status == 413:
        code, message = "PAYLOAD_TOO_LARGE", f"the request body is larger than the limit of {_body_limit()} MiB"
        field_limit = _field_limit()
        if field_limit is not None:
            message = (f"the form is over one of its own limits: a field other than a file of at most "
                       f"{field_limit:,} bytes, at most {request.max_form_parts:,} parts")
    if status == 400 and "Invalid JSON body." in str(data):
        code, message = "MALFORMED_JSON", "the request body is not valid JSON"
        undecodable = getattr(exc, "exc", None)  # webargs keeps the decoding error
        if isinstance(undecodable, UnicodeDecodeError):
            message = (f"the request body is not UTF-8 JSON (byte 0x{undecodable.object[undecodable.start]:02x} "
                       f"at offset {undecodable.start}): JSON is sent as UTF-8, whatever the charset says")
        elif isinstance(undecodable, RepeatedMember):
            message = f"the request body is not valid JSON: {undecodable.msg}"
        elif request.get_data(cache=True)[:3] == b"\xef\xbb\xbf":  # what Windows editors save UTF-8 with
            message = "the request body starts with a byte order mark (EF BB BF), which JSON may not: send it without"
    if _wants_html() and status == 413 and request.endpoint == "pages.check_photo":
        from app.pages.render import render_scan  # local: pages depend on this module

        # the scan page again, saying so, as for every other photo it cannot check
        response = make_response(render_scan(error_code="PHOTO_TOO_BIG"), status)
    elif _wants_html():
        from app.pages.render import render_error  # local: pages depend on this module

        response = make_response(render_error(status, page_message(exc)), status)
    else:
        response = error_response(status, code, message, **extra)
    retry_after = getattr(exc, "retry_after", None)  # 429 (rate limits), 503
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    if status == 405 and allowed:
        response.headers["Allow"] = ", ".join(sorted(allowed))
    return response


def page_message(exc: HTTPException) -> str:
    """What an error page says, from the catalogue in the page's language."""
    from flask_babel import gettext
    from flask_wtf.csrf import CSRFError

    from app.pages.texts import FIELD_TOO_LARGE, HTTP_ERROR, SESSION_EXPIRED, TOO_LARGE

    if isinstance(exc, CSRFError):
        return gettext(SESSION_EXPIRED)
    status = exc.code or 500
    if status == 413:
        field_limit = _field_limit()
        if field_limit is not None:
            return gettext(FIELD_TOO_LARGE, kb=f"{field_limit / 1000:g}")
        return gettext(TOO_LARGE, mib=_body_limit())
    text = HTTP_ERROR.get(status) or HTTP_ERROR[500 if status >= 500 else 400]
    return gettext(text)


def _body_limit() -> str:
    """This request's body limit in MiB (the report form's is larger than the rest's)."""
    limit = request.max_content_length or 0
    return f"{limit / (1024 * 1024):g}"


def _field_limit() -> int | None:
    """The limit of one form field (``MAX_FORM_MEMORY_SIZE``) when the form's own limits, not the
    body's, made this 413 (one field too large, or more parts than ``MAX_FORM_PARTS``: werkzeug
    does not say which): the body declared its length and was within its limit. None otherwise."""
    length, limit = request.content_length, request.max_content_length
    if length is None or (limit is not None and length > limit):
        return None
    return request.max_form_memory_size


def summary(messages: Any, prefix: str = "") -> str:
    """What a schema refused, on one line: each field at fault (``field_problems``), joined."""
    return "; ".join(field_problems(messages, prefix))


def field_problems(messages: Any, prefix: str = "") -> list[str]:
    """What a schema refused (marshmallow's messages), one ``field: message`` per field at fault,
    nested fields dotted (``product.colour``) and a field's several messages joined."""
    parts: list[str] = []
    if isinstance(messages, dict):
        for key, value in messages.items():
            if key in ("json", "query", "form", "files") and not prefix:
                parts.extend(field_problems(value, ""))
            else:
                parts.extend(field_problems(value, f"{prefix}{key}."))
    elif isinstance(messages, list):
        parts.append(f"{prefix.rstrip('.')}: {'; '.join(str(m) for m in messages)}" if prefix else "; ".join(map(str, messages)))
    else:
        parts.append(f"{prefix.rstrip('.')}: {messages}")
    return [p for p in parts if p]
