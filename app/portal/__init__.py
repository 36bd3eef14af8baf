"""The portals: login and accounts, producers, the authority, partner agencies (and inspectors).

Server-rendered pages over the same domain services as the API. Every view that writes passes the
session's ``Actor`` (set by :func:`app.portal.auth.login_required`) to the service, which checks
the role and the owning producer and writes the audit trail.
"""

from flask import Blueprint

bp = Blueprint("portal", __name__, url_prefix="/portal", template_folder="../templates")

from app.portal import auth, authority, cases, inspector, partner, producer  # noqa: E402,F401
from app.portal.errors import register_portal_errors  # noqa: E402

register_portal_errors(bp)
