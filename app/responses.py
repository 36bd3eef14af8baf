"""Response helpers shared by the API and the portals."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable

from flask import Response, send_file

from app.services import db_session

__all__ = ["spooled"]


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
