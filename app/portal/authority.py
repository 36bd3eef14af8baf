"""Authority portal: producers and their keys, key revocation, publications, user accounts, and the
audit trail.

Every write goes through the domain service with the session's actor (``Role.AUTHORITY`` is
checked there too) and is audited and, where the design says so, appended to the transparency log.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from app.i18n import N_, VIETNAM_TIME
from app.messages import ACTION_TEXT, VERDICT_TITLE
from app.portal import bp
from app.portal.auth import current_actor, login_required
from app.portal.cases import STATUS_LABEL
from app.portal.errors import error_text
from app.services import account_service, audit_trail, db_session, publication_service, registry
from registry.audit import ACTIONS, AuditQuery
from registry.errors import Conflict, Forbidden, Invalid, NotFound, RegistryError
from registry.keys_admin import producer_keys
from registry.publications import KINDS
from registry.services import Role
from verification.localtime import vietnam_day, vietnam_moment

AUTHORITY = Role.AUTHORITY
PUBLICATION_FIELDS = ("kind", "title", "body", "name", "tax_code", "product", "place", "decision_ref", "decided_on")
USER_FIELDS = ("username", "display_name", "role", "producer_id")


def _message(exc: RegistryError) -> str:
    text = error_text(exc)
    return _(text) if text else exc.message


def _field_errors(exc: RegistryError, *, default: str, by_code: dict[str, str] | None = None) -> dict[str, str]:
    """A form's objections, each beside its field (every one of them when the registry found several):
    the problem's own field, else the one its code is about (``by_code``), else ``default``."""
    errors: dict[str, str] = {}
    for problem in getattr(exc, "problems", [exc]):
        field = problem.field or (by_code or {}).get(problem.code, default)
        errors.setdefault(field, _message(problem))
    return errors


def _producers() -> list[dict[str, Any]]:
    """Every producer with its keys and their status (what the trust list signs)."""
    producers = registry().producers_with_keys()
    db_session().rollback()
    return producers


def _local_time(text: str, field: str) -> datetime | None:
    """A ``datetime-local`` value, read as the time in Vietnam (UTC+7)."""
    try:
        return vietnam_moment(text)
    except ValueError:
        raise Invalid(f"{field} must be a date and time", code="BAD_DATE", field=field) from None


# -- producers -------------------------------------------------------------------------------------
@bp.route("/authority/", methods=["GET", "POST"])
@login_required(AUTHORITY)
def authority_home():
    """Producers with their prefixes and keys; the form to admit one."""
    values = {name: (request.form.get(name) or "").strip() for name in ("name", "tax_code", "gs1_prefixes", "country")}
    errors: dict[str, str] = {}
    if request.method == "POST":
        prefixes = [p for p in values["gs1_prefixes"].replace(",", " ").replace(";", " ").split() if p]
        try:
            producer = registry().admit_producer(current_actor(), name=values["name"], tax_code=values["tax_code"],
                                                 gs1_prefixes=prefixes, country=values["country"])
        except (Invalid, Conflict) as exc:
            db_session().rollback()
            errors = _field_errors(exc, default="name", by_code={"PRODUCER_EXISTS": "tax_code"})
        else:
            producer_id, name = producer.id, producer.name
            db_session().commit()
            flash(_("%(name)s is admitted. Certify a key so it can register batches.", name=name), "ok")
            return redirect(url_for("portal.authority_producer", producer_id=producer_id), code=303)
    else:
        values["country"] = "VN"
    return render_template("portal/authority/producers.html", producers=_producers(), values=values,
                           errors=errors), (422 if errors else 200)


@bp.route("/authority/producers/<producer_id>")
@login_required(AUTHORITY)
def authority_producer(producer_id: str):
    reg = registry()
    producer = reg.producer(producer_id)
    keys = producer_keys(reg, current_actor(), producer_id)
    db_session().rollback()
    return render_template("portal/authority/producer.html", producer=producer, keys=keys, errors={}, values={})


@bp.route("/authority/producers/<producer_id>/keys", methods=["POST"])
@login_required(AUTHORITY)
def authority_certify_key(producer_id: str):
    """Certify a key for the producer: a new one the registry keeps, or a public key the producer submits."""
    reg = registry()
    producer = reg.producer(producer_id)
    public_key = (request.form.get("public_key") or "").strip() or None
    # every prefix is a box on the form: none sent is none ticked, which the registry refuses (None,
    # "all the producer's", had certified the key for every prefix)
    prefixes = request.form.getlist("gs1_prefixes")
    values = {"public_key": public_key or "", "not_after": request.form.get("not_after") or "",
              "gs1_prefixes": prefixes}
    errors: dict[str, str] = {}
    try:
        not_after = None
        if values["not_after"]:
            try:
                day = date.fromisoformat(values["not_after"])
            except ValueError:
                raise Invalid("not_after must be a date", code="BAD_DATE", field="not_after") from None
            not_after = datetime(day.year, day.month, day.day, tzinfo=VIETNAM_TIME)
        key = reg.certify_key(current_actor(), producer_id, public_key=public_key, gs1_prefixes=prefixes,
                              not_after=not_after)
    except (Invalid, Conflict) as exc:
        db_session().rollback()
        errors[exc.field or "public_key"] = _message(exc)
    else:
        kid = key.kid
        db_session().commit()
        flash(_("Key %(kid)s is certified and added to the public log.", kid=kid), "ok")
        return redirect(url_for("portal.authority_producer", producer_id=producer_id), code=303)
    keys = producer_keys(reg, current_actor(), producer_id)
    return render_template("portal/authority/producer.html", producer=producer, keys=keys, errors=errors,
                           values=values), 422


# -- keys ------------------------------------------------------------------------------------------
@bp.route("/authority/keys")
@login_required(AUTHORITY)
def authority_keys():
    """Every producer key, with the form to revoke it."""
    return render_template("portal/authority/keys.html", producers=_producers())


@bp.route("/authority/keys/<kid>/revoke", methods=["POST"])
@login_required(AUTHORITY)
def authority_revoke_key(kid: str):
    """Revoke a key from the time it was compromised: codes it signed from then on turn suspect."""
    try:
        compromised_at = _local_time(request.form.get("compromised_at", ""), "compromised_at")
        registry().revoke_key(current_actor(), kid, compromised_at=compromised_at)
    except (Invalid, Conflict) as exc:
        db_session().rollback()
        flash(f"{kid}: {_message(exc)}", "error")
    else:
        db_session().commit()
        flash(_("Key %(kid)s is revoked; the revocation is in the public log and the trust list.", kid=kid), "ok")
    return redirect(url_for("portal.authority_keys") + f"#key-{kid}", code=303)


# -- publications ----------------------------------------------------------------------------------
@bp.route("/authority/publications", methods=["GET", "POST"])
@login_required(AUTHORITY)
def authority_publications():
    """Consumer warnings and confirmed violators: publish (signed, logged) and withdraw."""
    values = {name: (request.form.get(name) or "").strip() for name in PUBLICATION_FIELDS}
    errors: dict[str, str] = {}
    if request.method == "POST":
        try:
            item = publication_service(signing=True).publish(current_actor(), **values)
        except Invalid as exc:
            db_session().rollback()
            errors = _field_errors(exc, default="title")
        else:
            index = item.log_index
            db_session().commit()
            flash(_("Published, at public log entry #%(index)d.", index=index), "ok")
            return redirect(url_for("portal.authority_publications"), code=303)
    else:
        values["kind"] = request.args.get("kind") if request.args.get("kind") in KINDS else "warning"
    service = publication_service()
    lists = {kind: service.list(kind, limit=200) for kind in KINDS}
    return render_template("portal/authority/publications.html", lists=lists, values=values, errors=errors), \
        (422 if errors else 200)


@bp.route("/authority/publications/<int:publication_id>/withdraw", methods=["POST"])
@login_required(AUTHORITY)
def authority_withdraw(publication_id: int):
    try:
        publication_service(signing=True).withdraw(current_actor(), publication_id,
                                                   reason=request.form.get("reason") or "")
    except (Invalid, Conflict) as exc:
        db_session().rollback()
        flash(_message(exc) if exc.code != "FIELD_REQUIRED" else _("A withdrawal needs a reason."), "error")
    else:
        db_session().commit()
        flash(_("Withdrawn. The withdrawal is in the public log; the publication no longer shows in the public lists."),
              "ok")
    return redirect(url_for("portal.authority_publications"), code=303)


# -- user accounts ---------------------------------------------------------------------------------
@bp.route("/authority/users", methods=["GET", "POST"])
@login_required(AUTHORITY)
def authority_users():
    """Portal accounts: create (with a first password), unlock, deactivate, reactivate."""
    service = account_service()
    values = {name: (request.form.get(name) or "").strip() for name in USER_FIELDS}
    errors: dict[str, str] = {}
    if request.method == "POST":
        try:
            user = service.create_user(current_actor(), username=values["username"],
                                       password=request.form.get("password") or "", role=values["role"],
                                       producer_id=values["producer_id"] or None,
                                       display_name=values["display_name"])
        except (Invalid, Conflict, NotFound) as exc:
            db_session().rollback()
            errors = _field_errors(exc, default="username", by_code={"PRODUCER_UNKNOWN": "producer_id"})
        else:
            username = user.username
            db_session().commit()
            flash(_("Account %(username)s is created. Give the password to its owner in person.", username=username),
                  "ok")
            return redirect(url_for("portal.authority_users"), code=303)
    users = [service.view(u) for u in service.list(current_actor())]
    now = datetime.now(VIETNAM_TIME)
    for user in users:
        user["locked"] = bool(user["locked_until"]) and datetime.fromisoformat(
            user["locked_until"].replace("Z", "+00:00")) > now
    return render_template("portal/authority/users.html", users=users, producers=_producers(), values=values,
                           errors=errors, roles=[r.value for r in Role],
                           own_username=(current_actor().name or "").removeprefix("user:")), (422 if errors else 200)


@bp.route("/authority/users/<username>/<any(unlock, deactivate, reactivate):action>", methods=["POST"])
@login_required(AUTHORITY)
def authority_user_action(username: str, action: str):
    service = account_service()
    try:
        getattr(service, action)(current_actor(), username)
    except (Conflict, Forbidden) as exc:
        db_session().rollback()
        flash(_message(exc), "error")
    else:
        db_session().commit()
        flash({"unlock": _("%(username)s is unlocked.", username=username),
               "deactivate": _("%(username)s is deactivated and can no longer log in.", username=username),
               "reactivate": _("%(username)s can log in again.", username=username)}[action], "ok")
    return redirect(url_for("portal.authority_users"), code=303)




@bp.route("/authority/users/<username>/password", methods=["POST"])
@login_required(AUTHORITY)
def authority_reset_password(username: str):
    """A new password for an account whose owner forgot it (or whose password leaked): its sessions
    end at their next click, a lock-out is lifted. One's own is changed on the account page, with
    the current password."""
    actor = current_actor()
    if actor.name == f"user:{username.strip().lower()}":
        flash(_("Change your own password on your account page."), "error")
        return redirect(url_for("portal.authority_users"), code=303)
    try:
        account_service().change_password(actor, username, old_password=None,
                                          new_password=request.form.get("password") or "")
    except (Invalid, NotFound) as exc:
        db_session().rollback()
        flash(_("%(username)s: %(problem)s", username=username, problem=_message(exc)), "error")
    else:
        db_session().commit()
        flash(_("%(username)s has a new password and every session of the account has ended. Give the password "
                "to its owner in person.", username=username), "ok")
    return redirect(url_for("portal.authority_users"), code=303)


# -- the audit trail -------------------------------------------------------------------------------
AUDIT_FILTERS = ("actor", "action", "target", "from", "until")
AUDIT_FILTER_ERROR = {  # registry.audit.AuditQuery.problems, said beside the field
    "UNKNOWN_ACTION": N_("Not an action the registry records."),
    "TOO_LONG": N_("This is too long."),
    "BAD_PERIOD": N_("The last day comes before the first."),
}


@bp.route("/authority/audit")
@login_required(AUTHORITY)
def authority_audit():
    """Who did what to which thing, newest first, 50 a page: filtered by who acted, the action, the
    thing acted on, and the days (in Vietnam time, both included). A value the trail cannot be
    filtered by is marked beside its field and the others still apply."""
    values = {name: (request.args.get(name) or "").strip() for name in AUDIT_FILTERS}
    errors: dict[str, str] = {}
    days: dict[str, datetime | None] = {}
    for name in ("from", "until"):
        try:
            days[name] = vietnam_day(values[name], until=name == "until")
        except (ValueError, OverflowError):
            errors[name], days[name] = _("Not a date: use the calendar."), None
    query = AuditQuery.of({**values, "since": days["from"], "until": days["until"]})
    problems = query.problems()
    for problem in problems:  # the field on the page: "until" is the last day
        errors[problem.field] = _(AUDIT_FILTER_ERROR[problem.code])
    query = query.without({problem.field for problem in problems})
    before = request.args.get("before", "")
    before = int(before) if before.isdigit() and before.isascii() and 0 < int(before) < 2**63 else None
    page = audit_trail().search(current_actor(), query, limit=50, before=before)
    db_session().rollback()
    for event in page.events:
        event["action_text"] = _(ACTION_TEXT[event["action"]]) if event["action"] in ACTION_TEXT else event["action"]
        event["detail_text"] = [_detail(key, value) for key, value in event["detail"].items()]
    return render_template("portal/authority/audit.html", events=page.events, next_before=page.next_before,
                           before=before, values=values, errors=errors,
                           filters={name: value for name, value in values.items() if value},
                           action_options=[(action, _(ACTION_TEXT[action])) for action in ACTIONS],
                           DETAIL_VALUE=DETAIL_VALUE), \
        (422 if errors else 200)


#: What the audit trail's detail keys are called on the page (a key not here is shown as it is).
DETAIL_LABEL = {
    "reason": N_("Reason"), "because": N_("Because of"), "note": N_("Note"), "failures": N_("Failed attempts"),
    "locked_until": N_("Locked until"), "role": N_("Role"), "producer_id": N_("Producer"),
    "log_index": N_("Transparency log entry"), "status_from": N_("From status"), "status_to": N_("To status"),
    "assignee": N_("Assigned to"), "publication": N_("Publication"), "place": N_("Place"), "name": N_("Name"),
    "kind": N_("Kind"), "custodial": N_("Key kept by the service"), "count": N_("Number"),
    "compromised_at": N_("Compromised from"), "expires_at": N_("Expires"), "version": N_("Version"),
    "previous": N_("Previous version"), "verdict": N_("Verdict"), "checks": N_("Checks"), "check": N_("Check"),
    "scan_count": N_("Checks of the unit"), "distinct_clients": N_("Different clients"), "cases": N_("Cases"),
    "attachment": N_("Attachment"), "offline": N_("Checked offline"), "record": N_("Signed record"),
    "offline_verdict": N_("Verdict on the phone, offline"),
}
#: Detail keys whose value is a verdict, shown in its words (``app.messages.VERDICT_TITLE``).
VERDICT_KEYS = frozenset({"verdict", "offline_verdict"})
#: Reasons the registry writes as codes.
DETAIL_VALUE = {"locked": N_("the account was locked")}
#: Detail keys whose value is a count, grouped as the page's language writes it (20.000, 20,000).
COUNTS = frozenset({"count", "checks", "failures", "scan_count", "distinct_clients", "cases"})
#: Detail keys whose value is a word of the registry's (a case's status, a publication's kind),
#: shown in the page's language: the Vietnamese trail had read "Từ trạng thái confirmed".
WORDS = {"status_from": STATUS_LABEL, "status_to": STATUS_LABEL,
         "kind": {"warning": N_("Consumer warning"), "violator": N_("Confirmed violator")}}


def _detail(key: str, value: Any) -> tuple[str, str, str]:
    """One entry of an event's detail as the page shows it: its label (translated by the template
    when known), how to show the value (``time``: in Vietnam time, ``role``: the role's name,
    ``verdict``: the verdict's words,
    ``yesno``, ``json``: a signed record or a list, folded; else ``text``) and the value as text."""
    label = DETAIL_LABEL.get(key, key)
    if value is None:
        return label, "text", "—"
    if isinstance(value, bool):
        return label, "yesno", "yes" if value else "no"
    if key == "role" and isinstance(value, str):
        return label, "role", value
    if key in VERDICT_KEYS and value in VERDICT_TITLE:
        return label, "verdict", value
    if isinstance(value, str) and value in WORDS.get(key, {}):
        return label, "words", WORDS[key][value]
    if key in COUNTS and isinstance(value, int):
        return label, "number", value
    if isinstance(value, str) and (key.endswith("_at") or key.endswith("_until")):
        return label, "time", value
    if isinstance(value, str):
        return label, ("value" if value in DETAIL_VALUE else "text"), value
    if isinstance(value, (dict, list)) and len(json.dumps(value)) > 80:
        return label, "json", json.dumps(value, ensure_ascii=False, indent=1)
    return label, "text", json.dumps(value, ensure_ascii=False, separators=(",", ":"))
