"""The JSON API under ``/api/v1``."""

from flask_smorest import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api/v1", description="Product-origin registry and verification")

from app.api import log_routes, portal_routes, publication_routes, registry_routes, report_routes, verify_routes  # noqa: E402,F401  (routes attach to bp)
