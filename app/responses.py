"""Response helpers shared by the API and the portals."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from flask import Response, current_app, jsonify, request, send_file, url_for
from flask.json.provider import DefaultJSONProvider

from app.services import db_session
from app.text_input import refuse_nul

__all__ = ["spooled", "OrjsonProvider", "RepeatedMember", "listing_page"]


class _RepeatedMember(ValueError):
    pass


class RepeatedMember(json.JSONDecodeError):
    """A JSON text naming an object member twice: a decoding error, as webargs and the command
    line catch them."""


def _members_once(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names):
        repeated = next(name for i, name in enumerate(names) if name in names[:i])
        raise _RepeatedMember(f"the object member {repeated!r} is given more than once")
    return dict(pairs)


class OrjsonProvider(DefaultJSONProvider):
    """Flask's JSON requests parsed and responses serialised by orjson: the same JSON (UTF-8, keys in order, dates and
    dataclasses handed to Flask's own ``default``), in a fifth of the time of ``json.dumps``, the
    largest part of answering GET /verify after the checks themselves. Pretty output (debug) and
    ``dumps()`` for templates stay with Flask's provider."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        """Request bodies by orjson: strict JSON (no NaN or Infinity, which no signature can carry),
        nesting at most 1,024 deep (deeper raised RecursionError, a 500), integers beyond 64 bits
        as floats; its errors are ``ValueError``, which Flask answers as a bad request. Bytes that
        are not UTF-8 raise ``UnicodeDecodeError`` (orjson's own error for them carries an empty
        document, which webargs takes for an empty body); a string holding a NUL (``\\u0000``)
        raises ``Invalid`` (``app.text_input``). An object that names a member twice is a
        ``ValueError`` too: orjson keeps the last, another reader the first, and what is signed is
        RFC 8785 JSON, which has each name once (I-JSON, RFC 7493)."""
        try:
            value = orjson.loads(s)
        except orjson.JSONDecodeError as exc:
            if exc.doc == "" and s and isinstance(s, (bytes, bytearray)):
                bytes(s).decode("utf-8")  # raises the UnicodeDecodeError, with the byte and its offset
            raise
        if (b"\\u0000" if isinstance(s, (bytes, bytearray)) else "\\u0000") in s:  # only as an escape
            refuse_nul(value)
        if isinstance(value, (dict, list)):  # orjson cannot say; read again, with each object's members in turn
            try:
                json.loads(s, object_pairs_hook=_members_once)
            except RecursionError:  # nesting past Python's reader (orjson takes 1,024 levels): left unchecked
                pass
            except _RepeatedMember as exc:
                # with the document: one that is empty webargs takes for a body that is missing
                text = s if isinstance(s, str) else bytes(s).decode("utf-8", "replace")
                raise RepeatedMember(str(exc), text, 0) from None
        return value

    def response(self, *args: Any, **kwargs: Any) -> Response:
        if self.ensure_ascii or (self.compact is None and self._app.debug) or self.compact is False:
            return super().response(*args, **kwargs)
        option = (orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_NON_STR_KEYS
                  | orjson.OPT_APPEND_NEWLINE | (orjson.OPT_SORT_KEYS if self.sort_keys else 0))
        body = orjson.dumps(self._prepare_response_obj(args, kwargs), default=self.default, option=option)
        return self._app.response_class(body, mimetype=self.mimetype)


def spooled(chunks: Iterable[str], *, mimetype: str, filename: str | None = None) -> Response:
    """Write a streamed export to a spooled file (memory, then disk past 8 MiB) and end the
    transaction before sending it: a slow download must not hold a database transaction (on SQLite,
    every writing transaction holds the write lock)."""
    spool = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)
    for chunk in chunks:
        spool.write(chunk.encode("utf-8"))
    db_session().rollback()
    spool.seek(0)
    return send_file(spool, mimetype=mimetype, as_attachment=filename is not None, download_name=filename)


def listing_page(fetch: Callable[[int], list[Any]], args: dict[str, Any],
                 view: Callable[[Any], Any] = lambda item: item) -> Response:
    """A listing's page as ``{"items": [...]}``, each item through ``view``: ``fetch(n)`` reads at
    most ``n`` from ``args["offset"]``, and is asked for one more than ``args["limit"]``, so that
    while more follow the answer says where (``Link: <...>; rel="next"``, RFC 8288, as the EPCIS
    export's): a short page had been the only sign of the end."""
    limit, offset = args["limit"], args["offset"]
    found = fetch(limit + 1)
    response = jsonify({"items": [view(item) for item in found[:limit]]})
    if len(found) > limit:
        query = request.args.to_dict() | {"offset": offset + limit}
        next_url = current_app.config["BASE_URL"] + url_for(request.endpoint, **(request.view_args or {}), **query)
        response.headers["Link"] = f'<{next_url}>; rel="next"'
    return response
