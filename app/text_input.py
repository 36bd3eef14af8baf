"""No text that comes in may hold a NUL character (U+0000).

PostgreSQL's text cannot store one (psycopg refuses it: a 500), SQLite stores it and the signer
would sign it into a record. So it is refused where each kind of input passes, before any view or
service sees it, with 422 ``NUL_CHARACTER`` naming the field (``registry.errors.Invalid``, which
``app.errors`` answers as JSON or a page, the portals as their problem page, the CLI as
``Error: CODE: message``):

- JSON bodies and files: :func:`refuse_nul`, called by the one JSON loader
  (``app.responses.OrjsonProvider.loads``), which the API, ``request.get_json`` and the CLI share;
- form fields and uploaded files' names: :class:`TextRequest`, when the form is parsed;
- the address (path segments and query parameters): :func:`refuse_nul_in_address`, before every
  view, except one marked :func:`judges_its_own_address` (the language switch: a ``next`` it
  cannot use leads home).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from flask import Request, current_app, request

from registry.errors import Invalid

__all__ = ["NUL_CHARACTER", "refuse_nul", "TextRequest", "refuse_nul_in_address", "judges_its_own_address"]

NUL_CHARACTER = "NUL_CHARACTER"
_NUL = "\x00"
_View = TypeVar("_View", bound=Callable[..., Any])


def _refused(field: str | None) -> Invalid:
    where = field if field else "the text"
    return Invalid(f"{where} holds a NUL character (U+0000), which no text may hold", code=NUL_CHARACTER,
                   field=field)


def _nul_path(value: Any, path: str) -> str | None:
    """The path (``product.name``, ``certifications.0.id``) of the first string holding a NUL."""
    if isinstance(value, str):
        return path if _NUL in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            name = f"{path}.{key}" if path else str(key)
            if _NUL in str(key):
                return name.replace(_NUL, "\\u0000")
            found = _nul_path(item, name)
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _nul_path(item, f"{path}.{index}" if path else str(index))
            if found is not None:
                return found
    return None


def refuse_nul(value: Any, field: str = "") -> None:
    """Raise ``Invalid`` (``NUL_CHARACTER``) when a string in ``value`` (parsed JSON: dicts, lists,
    keys too) holds a NUL; the field is its path, ``field`` first."""
    found = _nul_path(value, field)
    if found is not None:
        raise _refused(found or None)


def _refuse_nul_in_pairs(pairs: Iterable[tuple[str, Any]]) -> None:
    """Names and values of a form, a query or a path (a value that is not text holds no NUL)."""
    for name, value in pairs:
        if _NUL in name:
            raise _refused(name.replace(_NUL, "\\u0000"))
        if isinstance(value, str) and _NUL in value:
            raise _refused(name)


class TextRequest(Request):
    """Flask's request whose form fields and uploaded files' names are refused with a NUL in them,
    when the form is first read (by CSRF protection, webargs or a view alike)."""

    def _load_form_data(self) -> None:
        super()._load_form_data()
        # A multipart part without a name (no browser sends one) carries no field: left out, as
        # the None key it was kept under failed whatever read the form's names (a 500).
        for kind in ("form", "files"):
            fields = self.__dict__[kind]
            if None in fields:
                self.__dict__[kind] = type(fields)([(k, v) for k, v in fields.items(multi=True) if k is not None])
        _refuse_nul_in_pairs(self.form.items(multi=True))
        _refuse_nul_in_pairs((name, upload.filename or "") for name, upload in self.files.items(multi=True))


def judges_its_own_address(view: _View) -> _View:
    """Mark a view that reads its address's text only to judge it, storing and looking up nothing
    (the language switch): :func:`refuse_nul_in_address` leaves it alone."""
    view.judges_its_own_address = True  # type: ignore[attr-defined]
    return view


def refuse_nul_in_address() -> None:
    """Before every view: no NUL in a path segment or a query parameter (``/cases/VN%00``,
    ``?actor=%00``)."""
    if _NUL not in request.path and b"%00" not in request.query_string:
        return  # the usual request: nothing to look at (a query can only carry a NUL as %00)
    view = current_app.view_functions.get(request.endpoint or "")
    if view is None or getattr(view, "judges_its_own_address", False):
        return
    _refuse_nul_in_pairs((request.view_args or {}).items())
    _refuse_nul_in_pairs(request.args.items(multi=True))
