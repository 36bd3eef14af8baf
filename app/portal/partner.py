"""Read-only exports for partner agencies (and the authority and inspectors), with session login:
the same CSV and EPCIS output as the API's ``/exports`` routes, spooled the same way."""

from __future__ import annotations

from datetime import datetime, timezone
from itertools import chain

from flask import render_template, request
from flask_babel import format_decimal
from flask_babel import gettext as _

from registry.errors import Invalid
from registry.exports import CSV_EXPORTS, EPCIS_EVENTS, MAX_EPCIS_EVENTS
from registry.services import Role
from verification.localtime import vietnam_day, vietnam_moment

from app.i18n import N_
from app.portal import bp
from app.portal.auth import current_actor, login_required
from app.responses import spooled
from app.services import export_service

READERS = (Role.AUTHORITY, Role.INSPECTOR, Role.PARTNER)


@bp.route("/partner/")
@login_required(*READERS)
def partner_home():
    return render_template("portal/partner/exports.html", exports=list(CSV_EXPORTS), events=list(EPCIS_EVENTS),
                           max_events=format_decimal(MAX_EPCIS_EVENTS))


@bp.route("/exports/<any(batches, recalls, cases, violators):name>.csv")
@login_required(*READERS)
def export_csv(name: str):
    """A download for a person, who opens it in a spreadsheet: UTF-8 with a BOM, without which Excel
    reads Vietnamese as Windows-1252 ("CÃ  phÃª"). The API's copy (``GET /api/v1/exports``), for
    programs, has none."""
    return spooled(chain(["\ufeff"], export_service().csv(current_actor(), name)), mimetype="text/csv",
                   filename=f"{name}.csv")


_BOUND_LABEL = {"since": N_("From"), "until": N_("Until")}


def _bound(name: str) -> datetime | None:
    """The form's From or Until: a day in Vietnam time, as on the authority's audit page (Until
    included: ``?since=2026-12-06&until=2026-12-06`` is that whole day), or a date and time (with an
    offset, that moment; without, Vietnam time). A value that is neither is a problem (BAD_DATE),
    never a filter silently dropped."""
    text = request.args.get(name) or ""
    try:
        try:
            moment = vietnam_day(text, until=name == "until")
        except ValueError:  # not a day: a date and time
            moment = vietnam_moment(text)
        return None if moment is None else moment.astimezone(timezone.utc)
    except (ValueError, OverflowError):
        raise Invalid(f"{_(_BOUND_LABEL[name])}: {_('Not a date: use the calendar.')}", code="BAD_DATE",
                      field=name) from None


@bp.route("/exports/epcis.jsonld")
@login_required(*READERS)
def export_epcis():
    """Registrations, corrections, scans and recalls as an EPCIS 2.0 JSON-LD document (at most
    ``MAX_EPCIS_EVENTS``, the oldest first; the page says so, and the API pages through any number).
    An ``events`` that is not one of the choices is refused (BAD_EVENTS), never read as all."""
    which = request.args.get("events") or "all"
    chunks, _page = export_service().epcis_stream(current_actor(), since=_bound("since"), until=_bound("until"),
                                                  limit=MAX_EPCIS_EVENTS, events=which)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d")
    return spooled(chunks, mimetype="application/ld+json", filename=f"epcis-{which}-{stamp}.jsonld")
