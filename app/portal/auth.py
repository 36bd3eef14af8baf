"""Portal sessions: log in with a username and a password, log out, and ``login_required``.

The Flask session cookie (HttpOnly, SameSite=Lax, Secure in production) holds the user id, a
per-login nonce, the password's stamp (``AccountService.session_stamp``), the user's session
epoch and the time of login; the session is cleared on every login and logout, so a session id
planted before login is worth nothing. The ``Actor`` is loaded again on every request
(``AccountService.actor``): a deactivated account is logged out at its next click, and so is
every other session of a user whose password changed (the user's own, or reset by the
registry); the session that changed it goes on.

The cookie is signed, not stored, so clearing it in the browser would leave a copy of it
working: logging out also moves the user's session epoch on the server, which ends every
session of that user (on every device, not only this one). A session ends anyway
``PORTAL_SESSION_LIFETIME`` (12 hours) after its login, however active it is.
"""

from __future__ import annotations

import functools
import secrets
import time
from datetime import date, timedelta
from typing import Callable, TypeVar
from urllib.parse import urlparse

from flask import current_app, flash, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError

from registry.accounts import AccountService
from registry.errors import NotFound, Unauthorized
from registry.services import Actor, Role
from verification.localtime import vietnam_date

from app.extensions import rate_limit
from app.i18n import N_, country_options
from app.portal import bp
from app.security import local_target, request_target
from app.services import account_service, db_session, registry

__all__ = ["login_required", "current_actor", "nav_links", "home_endpoint", "SESSION_USER", "SESSION_NONCE",
           "SESSION_STAMP", "SESSION_EPOCH", "SESSION_SINCE"]

F = TypeVar("F", bound=Callable)

SESSION_USER = "portal_uid"
SESSION_NONCE = "portal_nonce"
SESSION_STAMP = "portal_stamp"  # the password's stamp at login: a new password ends the other sessions
SESSION_EPOCH = "portal_epoch"  # the user's session epoch at login: a logout ends every session
SESSION_SINCE = "portal_since"  # the time of login (Unix seconds), for the absolute lifetime
DEFAULT_LOGIN_LIMIT = "10/minute"
DEFAULT_SESSION_LIFETIME = timedelta(hours=12)

LOGIN_ERROR = {
    "INVALID_CREDENTIALS": N_("The username or the password is wrong."),
    "ACCOUNT_LOCKED": N_("Too many failed attempts: this account is locked for 15 minutes. "
                         "Try again later, or ask the registry to unlock it."),
}
NOTICE = {
    "login": N_("Please log in to continue."),
    "inactive": N_("Your account has been deactivated. Ask the registry if this is a mistake."),
    "password": N_("The password of this account was changed. Please log in with the new one."),
    "logout": N_("You have logged out."),
    "logged_out": N_("This account was logged out, which ends its sessions on every device. Please log in again."),
    "expired": N_("Your session has expired. Please log in again."),
    "locked": N_("Too many wrong passwords: this account is locked for 15 minutes and its sessions have ended. "
                 "Try again later, or ask the registry to unlock it."),
}
ENDED_NOTICE = {"SESSION_ENDED": "password", "SESSION_LOGGED_OUT": "logged_out"}

#: Navigation per role: (endpoint, label). Links whose view does not exist (yet) are left out.
ROLE_NAV: dict[Role, tuple[tuple[str, str], ...]] = {
    Role.PRODUCER: (("portal.producer_home", N_("Batches")), ("portal.producer_new_batch", N_("Register a batch")),
                    ("portal.producer_import", N_("Import CSV")), ("portal.producer_keys", N_("Keys")),
                    ("portal.producer_tokens", N_("API tokens")), ("portal.producer_reports", N_("Shoppers' reports"))),
    Role.AUTHORITY: (("portal.authority_home", N_("Producers")), ("portal.authority_keys", N_("Keys")),
                     ("portal.authority_publications", N_("Publications")),
                     ("portal.authority_users", N_("Accounts")), ("portal.authority_audit", N_("Audit trail")),
                     ("portal.inspector_home", N_("Inspections")), ("portal.flagged", N_("Flagged serials")),
                     ("portal.cases", N_("Cases")), ("portal.partner_home", N_("Exports"))),
    Role.INSPECTOR: (("portal.inspector_home", N_("Inspections")), ("portal.flagged", N_("Flagged serials")),
                     ("portal.cases", N_("Cases"))),
    Role.PARTNER: (("portal.partner_home", N_("Exports")),),
}


def login_limit() -> str:
    return current_app.config.get("LOGIN_RATE_LIMIT", DEFAULT_LOGIN_LIMIT)


def current_actor() -> Actor:
    """The logged-in actor of this request (inside a ``login_required`` view)."""
    actor = g.get("actor")
    if actor is None:
        raise Unauthorized("log in first", code="LOGIN_REQUIRED")
    return actor


def _load_actor() -> Actor | None:
    """The session's actor, or None (not logged in, or the account is gone or deactivated)."""
    if "actor" in g:
        return g.actor
    user_id, epoch, since = session.get(SESSION_USER), session.get(SESSION_EPOCH), session.get(SESSION_SINCE)
    if (not isinstance(user_id, int) or not session.get(SESSION_NONCE) or not session.get(SESSION_STAMP)
            or not isinstance(epoch, int) or not isinstance(since, int)):
        return None  # not logged in (or logged in before sessions carried all of these)
    lifetime = current_app.config.get("PORTAL_SESSION_LIFETIME", DEFAULT_SESSION_LIFETIME)
    if time.time() - since > lifetime.total_seconds():
        session.clear()
        g.portal_ended = "expired"
        return None
    try:
        actor = account_service().actor(user_id, stamp=session[SESSION_STAMP], epoch=epoch)
    except (NotFound, Unauthorized) as exc:
        session.clear()
        g.portal_ended = ENDED_NOTICE.get(getattr(exc, "code", None), "inactive")
        return None
    g.actor = actor
    g.portal_user_id = user_id
    return actor


def _safe_next(target: str | None) -> str | None:
    return local_target(target, under="/portal")


#: The fragment a form's page is returned to with after a login: portal.js fills the form again
#: with what the refused post held (kept in the tab's sessionStorage as it was sent).
UNSENT = "#unsent"


def _return_to() -> str | None:
    """Where to go after logging in: this page for a GET; for a form's post (a note typed while the
    session ended), the page the form was on, by its Referer (same-origin by our Referrer-Policy),
    and not the post's address, which a GET after the login would answer 405, the text lost."""
    if request.method in ("GET", "HEAD"):
        return request_target()
    page = urlparse(request.referrer or "")
    if page.netloc and page.netloc != request.host:
        return None
    target = _safe_next(page.path + ("?" + page.query if page.query else ""))
    return target + UNSENT if target else None


def login_required(*roles: Role) -> Callable[[F], F]:
    """Require a logged-in user (any role when none is named). Sets ``g.actor``; redirects to the
    login page when nobody is logged in; answers the 403 page for another role."""

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            actor = _load_actor()
            if actor is None:
                reason = g.get("portal_ended") or "login"
                return redirect(url_for("portal.login", next=_return_to(), notice=reason))
            if roles and actor.role not in roles:
                return render_template("portal/forbidden.html"), 403
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorator


def home_endpoint(role: Role) -> str:
    home = {Role.PRODUCER: "portal.producer_home", Role.AUTHORITY: "portal.authority_home",
            Role.PARTNER: "portal.partner_home", Role.INSPECTOR: "portal.inspector_home"}[role]
    return home if home in current_app.view_functions else "portal.home"


def nav_links() -> list[tuple[str, str]]:
    """The navigation of the logged-in user's role, only with views that exist."""
    actor = g.get("actor")
    if actor is None:
        return []
    return [(endpoint, label) for endpoint, label in ROLE_NAV.get(actor.role, ())
            if endpoint in current_app.view_functions]


@bp.app_context_processor
def _portal_globals():
    return {"portal_nav": nav_links, "portal_actor": lambda: g.get("actor"),
            "portal_has_view": lambda endpoint: endpoint in current_app.view_functions}


bp.add_app_template_global(country_options)  # the batch form's countries, named in the page's language


@bp.app_template_global("portal_today")
def _today() -> date:
    """What the verdicts compare expiry dates with (verification.verdicts.Verifier: the date in
    Vietnam); a global, not a context variable, so that imported macros see it too."""
    return vietnam_date()


@bp.errorhandler(CSRFError)
def _form_without_its_session(exc: CSRFError):
    """A portal form sent without its session's token: the session expired (12 hours), the browser
    was restarted, or the user logged in again in another tab. Back to the form's page (through the
    login when nobody is logged in any more), what was typed filled in again by portal.js, to send
    again; it had been the public error page, the text lost."""
    from app.errors import handle_http_error  # local: the app's error module imports the pages

    if request.endpoint == "portal.login_submit":  # the login page left open: the form again
        return redirect(url_for("portal.login", next=_safe_next(request.form.get("next")), notice="expired"))
    target = _return_to()
    if _load_actor() is None:
        return redirect(url_for("portal.login", next=target, notice="expired"))
    if target is None:  # no page to go back to (no Referer): say it, as before
        return handle_http_error(exc)
    flash(_(FORM_TOKEN_STALE), "error")
    return redirect(target, code=303)


#: A form sent with a stale token by a user still logged in (a new login in another tab).
FORM_TOKEN_STALE = N_("The form was not sent: this page's session had changed. Check what the form holds and "
                      "send it again.")


@bp.route("/login", methods=["GET"])
def login():
    _load_actor()  # a logged-in user may log in as someone else (a shared computer)
    notice = NOTICE.get(request.args.get("notice", ""))
    return render_template("portal/login.html", notice=notice, error=None, username="",
                           next=_safe_next(request.args.get("next")) or "")


@bp.route("/login", methods=["POST"])
@rate_limit(login_limit, methods=["POST"])
def login_submit():
    username = (request.form.get("username") or "").strip()[:100]
    password = request.form.get("password") or ""
    target = _safe_next(request.form.get("next"))
    service = account_service()
    try:
        actor = service.authenticate(username, password)
    except Unauthorized as exc:
        db_session().commit()  # the failure counts (and may lock the account)
        message = LOGIN_ERROR.get(exc.code, LOGIN_ERROR["INVALID_CREDENTIALS"])
        return render_template("portal/login.html", notice=None, error=message, username=username,
                               next=target or ""), 401
    user = service.by_username(username)
    db_session().commit()
    session.clear()  # a fresh session for every login: no fixation
    session[SESSION_USER] = user.id
    session[SESSION_NONCE] = secrets.token_urlsafe(16)
    session[SESSION_STAMP] = AccountService.session_stamp(user)
    session[SESSION_EPOCH] = user.session_epoch
    session[SESSION_SINCE] = int(time.time())
    g.actor = actor
    return redirect(target or url_for(home_endpoint(actor.role)), code=303)


@bp.route("/logout", methods=["POST"])
def logout():
    """End the session here and on the server: every session of this user ends (a copy of the
    cookie would otherwise go on working)."""
    if _load_actor() is not None:
        account_service().log_out(g.portal_user_id)
        db_session().commit()
    session.clear()
    return redirect(url_for("portal.login", notice="logout"), code=303)


@bp.route("/")
@login_required()
def home():
    """Each role's start page; a role whose portal is not there yet sees its account."""
    endpoint = home_endpoint(current_actor().role)
    if endpoint != "portal.home":
        return redirect(url_for(endpoint))
    return render_template("portal/home.html")


@bp.route("/account", methods=["GET", "POST"])
@login_required()
def account():
    """Change one's own password."""
    actor = current_actor()
    errors: dict[str, str] = {}
    if request.method == "POST":
        old = request.form.get("old_password") or ""
        new = request.form.get("new_password") or ""
        if new != (request.form.get("new_password_again") or ""):
            errors["new_password_again"] = N_("The two new passwords are not the same.")
        else:
            from registry.errors import Forbidden, Invalid

            try:
                changed = account_service().change_password(actor, actor.name.removeprefix("user:"),
                                                             old_password=old, new_password=new)
            except Forbidden as exc:
                db_session().commit()  # the failure counts (and may lock the account), as at login
                if exc.code == "ACCOUNT_LOCKED":  # locked, and its sessions ended: this one too
                    session.clear()
                    return redirect(url_for("portal.login", notice="locked"), code=303)
                errors["old_password"] = N_("The current password is wrong.")
            except Invalid as exc:
                errors["new_password"] = (N_("A password needs at least 10 characters.")
                                          if exc.code == "PASSWORD_TOO_SHORT" else N_("This password is too long."))
            else:
                db_session().commit()
                session[SESSION_STAMP] = AccountService.session_stamp(changed)  # this one goes on, the others end
                # to the page by GET: reloading the answer to the post had sent the old password
                # again, a failed attempt counting towards the lock-out
                flash(_("Your password has been changed."), "ok")
                return redirect(url_for("portal.account"), code=303)
    user = account_service().get(g.portal_user_id)
    producer_name = registry().producer(user.producer_id).name if user.producer_id else None
    return render_template("portal/account.html", user=AccountService.view(user), producer_name=producer_name,
                           errors=errors), (422 if errors else 200)
