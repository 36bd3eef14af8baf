"""The JSON API under ``/api/v1``."""

from flask import current_app
from flask_smorest import Blueprint
from webargs.flaskparser import FlaskParser, is_json_request
from webargs.core import missing


class _AppJsonParser(FlaskParser):
    """webargs reads JSON bodies with the app's JSON provider (``app.responses.OrjsonProvider``:
    strict JSON, bounded nesting) instead of ``json.loads``, so that the API and ``get_json``
    accept the same bodies; a body it refuses is answered 400 ``MALFORMED_JSON`` as before."""

    def _raw_load_json(self, req):  # noqa: ANN001, ANN202  (webargs' signature)
        if not is_json_request(req):
            if req.get_data(cache=True):  # a body, but not labelled JSON: say so, not "missing field"
                from app.errors import ApiError

                raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE",
                               f"send the body as application/json (it came as {req.mimetype or 'no type'})")
            return missing
        return current_app.json.loads(req.get_data(cache=True))

    def load_form(self, req, schema):  # noqa: ANN001, ANN201  (webargs' signature)
        """A form's fields, from a form: a JSON body had been read as an empty form, and answered
        that fields it held were missing."""
        if req.mimetype not in _FORM_TYPES and req.content_length:
            from app.errors import ApiError

            raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE",
                           f"send the body as multipart/form-data (it came as {req.mimetype or 'no type'})")
        return super().load_form(req, schema)


_FORM_TYPES = frozenset({"multipart/form-data", "application/x-www-form-urlencoded"})


class _Blueprint(Blueprint):
    ARGUMENTS_PARSER = _AppJsonParser()


bp = _Blueprint("api", __name__, url_prefix="/api/v1", description="Product-origin registry and verification")

from app.api import (  # noqa: E402,F401  (routes attach to bp)
    audit_routes, log_routes, portal_routes, publication_routes, registry_routes, report_routes, verify_routes)
