"""Producer portal: batches, registration by form and by CSV, corrections, serials, labels, recall,
shoppers' reports about the producer's products, keys, tokens.

Producer staff act for their own producer; the authority may open any producer's pages with
``?producer=ID``. The services check both (``Actor.require_producer``); views only pass the actor.
"""

from __future__ import annotations

import tempfile
from typing import Any, Callable

from flask import Response, flash, redirect, render_template, request, send_file, session, url_for
from flask_babel import format_decimal, gettext as _, ngettext

from registry.errors import Conflict, Forbidden, Invalid, NotFound, RegistryError
from registry.keys_admin import producer_keys, rotate_key
from registry.labels import LABEL_STOCKS, MAX_LABELS_PER_SHEET, codes_csv, render_png, render_svg, write_pdf_sheet
from registry.rules import check_gtin
from registry.services import MAX_SERIALS_PER_REQUEST, Role

from app.portal import bp
from app.portal.auth import current_actor, login_required
from app.portal.batch_csv import COLUMNS, parse_csv, quantity_of, template_csv
from app.portal.cases import STATUS_LABEL
from app.portal.errors import error_text
from app.portal.paging import page_number
from app.responses import spooled
from app.security import seal, unseal
from app.services import case_service, db_session, export_service, registry, token_admin

STAFF = (Role.PRODUCER, Role.AUTHORITY)
FORM_FIELDS = ("gtin", "lot", "product.name", "product.brand", "product.category", "facility.name",
               "facility.address", "facility.gln", "facility.country", "production_date", "expiry_date",
               "quantity", "certification.scheme", "certification.id")
#: Where a domain error without a field belongs on the batch form.
CODE_FIELD = {"PREFIX_NOT_LICENSED": "gtin", "BATCH_EXISTS": "lot"}


def _producer_id() -> str:
    """The producer these pages are about: the staff member's own, or ``?producer=`` for the authority
    (a producer naming another producer is refused by the services)."""
    actor = current_actor()
    chosen = (request.values.get("producer") or "").strip()
    producer_id = chosen or actor.producer_id
    if not producer_id:
        raise NotFound("choose a producer (?producer=ID)", code="PRODUCER_UNKNOWN")
    actor.require_producer(producer_id)
    return producer_id


def _scope(producer_id: str) -> dict[str, str]:
    """Query arguments that keep the authority on the producer it is looking at."""
    return {"producer": producer_id} if current_actor().role == Role.AUTHORITY else {}


def _message(exc: RegistryError) -> str:
    """What to show for a domain error: the catalogue's words, else the domain's own message."""
    text = error_text(exc)
    return _(text) if text else exc.message


def _field_name(exc: RegistryError) -> str:
    return exc.field or CODE_FIELD.get(exc.code, "")


# -- batches ---------------------------------------------------------------------------------------
@bp.route("/producer/")
@login_required(*STAFF)
def producer_home():
    """The producer's batches, newest first, with status, serials and scan counts."""
    if current_actor().role == Role.AUTHORITY and not request.args.get("producer"):
        return redirect(url_for("portal.authority_home"))
    producer_id = _producer_id()
    page = page_number(request.args.get("page"))
    query = (request.args.get("q") or "").strip()[:100]
    per_page = 50
    items = export_service().producer_batches(current_actor(), producer_id, limit=per_page + 1,
                                              offset=(page - 1) * per_page, query=query)
    producer = registry().producer(producer_id)
    return render_template("portal/producer/batches.html", producer=producer, items=items[:per_page], page=page,
                           more=len(items) > per_page, query=query, scope=_scope(producer_id))


def _form_body(form) -> dict[str, Any]:
    get = lambda name: (form.get(name) or "").strip()  # noqa: E731
    quantity = quantity_of(get("quantity"))
    body: dict[str, Any] = {
        "gtin": get("gtin"), "lot": get("lot"),
        "product": {"name": get("product.name"), "brand": get("product.brand"), "category": get("product.category")},
        "facility": {"name": get("facility.name"), "address": get("facility.address"), "gln": get("facility.gln"),
                     "country": get("facility.country")},
        "production_date": get("production_date"), "expiry_date": get("expiry_date"), "quantity": quantity,
    }
    certifications = _certifications(form)
    if certifications:
        body["certifications"] = certifications
    return body


def _certifications(form) -> list[dict[str, str]]:
    """The form's certification rows (``certification.scheme`` and ``certification.id``, repeated), the
    empty ones left out."""
    pairs = zip(form.getlist("certification.scheme"), form.getlist("certification.id"))
    return [{"scheme": scheme.strip(), "id": number.strip()} for scheme, number in pairs
            if scheme.strip() or number.strip()]


def _certification_fields(rows: list[dict[str, str]]) -> tuple[str, ...]:
    """Each certification row's fields as the registry names them (certifications.N.id), so that a
    problem is marked beside its row."""
    return tuple(f"certifications.{i}.{part}" for i in range(len(rows)) for part in ("scheme", "id"))


def _form_errors(exc: RegistryError, fields: tuple[str, ...],
                 rename: Callable[[str], str] = lambda field: field) -> tuple[dict[str, str], str | None]:
    """A record form's objections: each beside its field (``rename``: the form's name for the
    registry's field), the others above the form."""
    errors: dict[str, str] = {}
    general = None
    for problem in getattr(exc, "problems", [exc]):
        field = rename(_field_name(problem))
        if field in fields:
            errors.setdefault(field, _message(problem))
        else:
            general = general or _message(problem)
    return errors, general


def _record_values(record: dict[str, Any]) -> dict[str, Any]:
    """A signed origin record as the record form's values (the correction form starts from it)."""
    product, facility = record.get("product") or {}, record.get("facility") or {}
    values: dict[str, Any] = {"gtin": record["gtin"], "lot": record["lot"],
                              "production_date": record.get("production_date") or "",
                              "expiry_date": record.get("expiry_date") or "",
                              "quantity": str(record["quantity"]) if record.get("quantity") else ""}
    values.update({f"product.{k}": product.get(k, "") for k in ("name", "brand", "category")})
    values.update({f"facility.{k}": facility.get(k, "") for k in ("name", "address", "gln", "country")})
    values["certifications"] = [{"scheme": c.get("scheme", ""), "id": c.get("id", "")}
                                for c in record.get("certifications") or []]
    return values


@bp.route("/producer/batches/new", methods=["GET", "POST"])
@login_required(*STAFF)
def producer_new_batch():
    """Register one batch with a form; each of the registry's objections is shown beside its field."""
    producer_id = _producer_id()
    values: dict[str, Any] = {name: (request.form.get(name) or "").strip() for name in FORM_FIELDS}
    values["certifications"] = _certifications(request.form)  # as many rows as the registry takes
    errors: dict[str, str] = {}
    general = None
    if request.method == "POST":
        reg = registry()
        try:
            batch = reg.register_batch(current_actor(), _form_body(request.form), producer_id=producer_id)
        except (Invalid, Conflict, Forbidden, NotFound) as exc:
            db_session().rollback()
            errors, general = _form_errors(exc, FORM_FIELDS + _certification_fields(values["certifications"]))
        else:
            gtin, lot = batch.gtin, batch.lot
            db_session().commit()
            flash(_("Batch %(gtin)s / %(lot)s is registered.", gtin=gtin, lot=lot), "ok")
            return redirect(url_for("portal.producer_batch", gtin=gtin, lot=lot, **_scope(producer_id)), code=303)
    else:
        values["facility.country"] = "VN"
    status = 422 if (errors or general) else 200
    return render_template("portal/producer/new_batch.html", values=values, errors=errors, general=general,
                           scope=_scope(producer_id)), status


@bp.route("/producer/batches/<gtin>/<path:lot>")
@login_required(*STAFF)
def producer_batch(gtin: str, lot: str):
    """One batch: its record, status (a recall's reason and date), serials (the first 100), labels, recall."""
    return _batch_page(gtin, lot)


def _batch_page(gtin: str, lot: str, *, count_value: str = "10", count_error: str | None = None,
                status: int = 200):
    """The batch page; ``count_value`` and ``count_error``: the serials form as it was sent, and why
    it was refused."""
    actor = current_actor()
    reg = registry()
    batch = reg.owned_batch(actor, gtin, lot)
    view = reg.batch_view(batch)
    serials = export_service().batch_serials(actor, gtin, lot, limit=100)
    key = reg.key(batch.kid)
    key_revoked = key is not None and key.status == "revoked"
    recalled = reg.batch_recall(batch)
    recall = {"reason": recalled.reason, "at": recalled.at} if recalled is not None else None
    db_session().rollback()
    return render_template("portal/producer/batch.html", batch=batch, view=view, serials=serials,
                           key_revoked=key_revoked, recall=recall, count_value=count_value, count_error=count_error,
                           stocks=LABEL_STOCKS, max_serials=MAX_SERIALS_PER_REQUEST,
                           max_serials_text=format_decimal(MAX_SERIALS_PER_REQUEST),
                           sheet_parts=_sheet_parts(batch.serial_count),
                           sheet_max_text=format_decimal(MAX_LABELS_PER_SHEET),
                           scope=_scope(batch.producer_id)), status


@bp.route("/producer/batches/<gtin>/<path:lot>/correct", methods=["GET", "POST"])
@login_required(*STAFF)
def producer_correct_batch(gtin: str, lot: str):
    """Correct the origin record: the form starts from the current record; the registry signs the
    corrected one as a new version in the public log and keeps the old. Each objection is shown
    beside its field."""
    actor = current_actor()
    reg = registry()
    batch = reg.owned_batch(actor, gtin, lot)
    scope = _scope(batch.producer_id)
    fields = FORM_FIELDS + ("reason",)
    errors: dict[str, str] = {}
    general = None
    if request.method == "POST":
        values: dict[str, Any] = {name: (request.form.get(name) or "").strip() for name in fields}
        values["certifications"] = _certifications(request.form)
        try:
            corrected = reg.correct_batch(actor, gtin, lot, _form_body(request.form), reason=values["reason"])
        except (Invalid, Conflict, Forbidden) as exc:
            db_session().rollback()
            errors, general = _form_errors(exc, fields + _certification_fields(values["certifications"]))
        else:
            version = corrected.record["version"]
            db_session().commit()
            flash(_("The record is corrected: version %(version)d is signed and in the public log. "
                    "Labels already printed stay valid.", version=version), "ok")
            return redirect(url_for("portal.producer_batch", gtin=gtin, lot=lot, **scope) + "#record", code=303)
    else:
        values = _record_values(batch.record)
    values.update(gtin=batch.gtin, lot=batch.lot, expiry_date=batch.record.get("expiry_date") or "")
    response = render_template("portal/producer/correct_batch.html", batch=batch, values=values, errors=errors,
                               general=general, scope=scope)
    db_session().rollback()
    return response, (422 if errors or general else 200)


def _sheet_parts(count: int) -> list[tuple[int, str]]:
    """A batch with more codes than one PDF sheet takes: its parts, as (part, "first–last")."""
    if count <= MAX_LABELS_PER_SHEET:
        return []
    return [(i + 1, f"{format_decimal(start + 1)}–{format_decimal(min(start + MAX_LABELS_PER_SHEET, count))}")
            for i, start in enumerate(range(0, count, MAX_LABELS_PER_SHEET))]


@bp.route("/producer/batches/<gtin>/<path:lot>/serials", methods=["POST"])
@login_required(*STAFF)
def producer_issue_serials(gtin: str, lot: str):
    actor = current_actor()
    reg = registry()
    batch = reg.owned_batch(actor, gtin, lot)
    scope = _scope(batch.producer_id)
    typed = (request.form.get("count") or "").strip()
    count = request.form.get("count", type=int)
    try:
        issued = reg.issue_serials(actor, gtin, lot, count if count is not None else 0)
    except (Invalid, Conflict) as exc:
        db_session().rollback()
        if exc.field == "count":  # the form again, with what was typed and why it is refused beside it
            return _batch_page(gtin, lot, count_value=typed[:20], count_error=_message(exc), status=422)
        flash(_message(exc), "error")
    else:
        total, declared = batch.serial_count, (batch.record or {}).get("quantity")
        db_session().commit()
        flash(ngettext("%(count)s serial issued.", "%(count)s serials issued.", len(issued),
                       count=format_decimal(len(issued))), "ok")
        if isinstance(declared, int) and total > declared:  # spares for spoiled labels, or a slip of a digit
            flash(_("The batch now has %(total)s serials, more than the %(declared)s units its record declares.",
                    total=format_decimal(total), declared=format_decimal(declared)), "error")
    return redirect(url_for("portal.producer_batch", gtin=gtin, lot=lot, **scope) + "#serials", code=303)


@bp.route("/producer/batches/<gtin>/<path:lot>/recall", methods=["POST"])
@login_required(*STAFF)
def producer_recall(gtin: str, lot: str):
    actor = current_actor()
    reg = registry()
    batch = reg.owned_batch(actor, gtin, lot)
    scope = _scope(batch.producer_id)
    try:
        reg.recall(actor, gtin, lot, reason=request.form.get("reason") or "")
    except (Invalid, Conflict) as exc:
        db_session().rollback()
        flash(_message(exc) if exc.code != "FIELD_REQUIRED" else _("A recall needs a reason."), "error")
    else:
        db_session().commit()
        flash(_("The batch is recalled. Shoppers who scan it now see that it is recalled."), "ok")
    return redirect(url_for("portal.producer_batch", gtin=gtin, lot=lot, **scope), code=303)


# -- labels ------------------------------------------------------------------------------------------
def _label_name(gtin: str, lot: str, serial: str | None, ext: str) -> str:
    safe_lot = "".join(c if c.isalnum() or c in "-_" else "_" for c in lot)
    return f"label-{gtin}-{safe_lot}" + (f"-{serial}" if serial else "") + f".{ext}"


@bp.route("/producer/batches/<gtin>/<path:lot>/labels.pdf")
@login_required(*STAFF)
def producer_labels_pdf(gtin: str, lot: str):
    """A printable PDF sheet of every code of the batch, on the chosen label stock (spooled to disk
    past 32 MiB, and the database transaction ended before the download starts)."""
    stock = request.args.get("stock") or "a4-24"
    if stock not in LABEL_STOCKS:
        raise Invalid(f"unknown label stock {stock!r}", code="BAD_STOCK", field="stock")
    part = request.args.get("part", type=int)  # a batch of more than one sheet's labels: its parts, from 1
    if part is not None and not 1 <= part <= 100_000:  # offsets past 10^9 serials: no batch has them
        raise Invalid(f"no part {request.args.get('part')!r}", code="BAD_RANGE", field="part")
    offset, limit = ((part - 1) * MAX_LABELS_PER_SHEET, MAX_LABELS_PER_SHEET) if part else (0, None)
    items = registry().label_sheet(current_actor(), gtin, lot, offset=offset, limit=limit)
    spool = tempfile.SpooledTemporaryFile(max_size=32 * 1024 * 1024)
    write_pdf_sheet(items, spool, stock=stock)
    db_session().rollback()
    spool.seek(0)
    return send_file(spool, mimetype="application/pdf", as_attachment=True,
                     download_name=_label_name(gtin, lot, None, "pdf").replace("label-", "labels-", 1)
                     .replace(".pdf", f"-part{part}.pdf" if part else ".pdf"))


@bp.route("/producer/batches/<gtin>/<path:lot>/codes.csv")
@login_required(*STAFF)
def producer_codes_csv(gtin: str, lot: str):
    """Every code of the batch with its signed URL (CSV), for the producer's own label printer."""
    items = registry().labels(current_actor(), gtin, lot)
    return spooled(codes_csv(items), mimetype="text/csv",
                   filename=_label_name(gtin, lot, None, "csv").replace("label-", "codes-", 1))


@bp.route("/producer/batches/<gtin>/<path:lot>/label.<any(png, svg):fmt>")
@login_required(*STAFF)
def producer_label(gtin: str, lot: str, fmt: str):
    """One code's label as PNG or SVG: ``?serial=S``, or the batch code when the batch has no serials."""
    serial = request.args.get("serial") or None
    items = registry().labels(current_actor(), gtin, lot, serial=serial, include_serials=False)
    label = next(items)
    db_session().rollback()
    name = _label_name(gtin, lot, serial, fmt)
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    if fmt == "png":
        return Response(render_png(label), mimetype="image/png", headers=headers)
    return Response(render_svg(label), mimetype="image/svg+xml", headers=headers)


# -- CSV import ------------------------------------------------------------------------------------
@bp.route("/producer/import/template.csv")
@login_required(*STAFF)
def producer_import_template():
    return Response(template_csv(), mimetype="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="batches-template.csv"'})


def _preview(producer_id: str, rows) -> list[dict[str, Any]]:
    """Check every row with the registry's own rules, writing nothing: each row is registered in a
    savepoint, then the whole transaction is rolled back. A row with the GTIN and lot of an earlier
    row of the file is said to repeat that line (its savepoint found the earlier row's batch
    "already registered", though nothing is). Returns one result per row: its line, GTIN, lot,
    product and problems (``(column, text)``)."""
    actor = current_actor()
    reg = registry()
    db = db_session()
    first_line: dict[tuple[str, str], int] = {}  # each GTIN and lot of the file: the line it is first on
    results = []
    try:
        for row in rows:
            found: list[RegistryError] = []
            try:
                with db.begin_nested():
                    reg.register_batch(actor, row.data, producer_id=producer_id)
            except (Invalid, Conflict, Forbidden, NotFound) as exc:
                found = list(getattr(exc, "problems", [exc]))
            key = _batch_key(row.data)
            repeated = first_line.get(key) if key is not None else None
            problems = [(row.column(_field_name(problem)), _message(problem)) for problem in found
                        if not (repeated and problem.code == "BATCH_EXISTS")]
            if repeated:
                problems.insert(0, ("lot", _("This GTIN and lot repeat line %(line)d of the file.", line=repeated)))
            elif key is not None:
                first_line[key] = row.line
            results.append({"line": row.line, "gtin": row.data.get("gtin"), "lot": row.data.get("lot"),
                            "product": (row.data.get("product") or {}).get("name"), "problems": problems,
                            "error": bool(problems)})
    finally:
        db.rollback()
    return results


def _batch_key(data: dict[str, Any]) -> tuple[str, str] | None:
    """A CSV row's GTIN (as the registry keeps it, 14 digits) and lot; None for a row without a valid
    GTIN or a lot (refused for that on its own)."""
    try:
        gtin = check_gtin(str(data.get("gtin") or ""))
    except Invalid:
        return None
    lot = str(data.get("lot") or "")
    return (gtin, lot) if lot else None


@bp.route("/producer/import", methods=["GET", "POST"])
@login_required(*STAFF)
def producer_import():
    """Upload a CSV -> a preview of every row and its errors (nothing written) -> import all or none."""
    producer_id = _producer_id()
    scope = _scope(producer_id)
    if request.method == "GET":
        return render_template("portal/producer/import.html", columns=COLUMNS, scope=scope, results=None,
                               csv_text="", file_error=None)
    upload = request.files.get("file")
    if upload is not None and upload.filename:
        raw: bytes | str = upload.read()
    else:
        raw = request.form.get("csv_text") or ""
    try:
        rows = parse_csv(raw)
    except Invalid as exc:
        return render_template("portal/producer/import.html", columns=COLUMNS, scope=scope, results=None,
                               csv_text="", file_error=_message(exc)), 422
    csv_text = raw.decode("utf-8-sig") if isinstance(raw, bytes) else raw
    if request.form.get("confirm") == "1":
        try:
            batches = registry().register_batches(current_actor(), [r.data for r in rows], producer_id=producer_id)
        except (Invalid, Conflict, Forbidden, NotFound) as exc:
            db_session().rollback()  # all or nothing: the preview is shown again with what changed
            # the file's line, as the preview numbers them, and the catalogue's words (raced: a batch
            # registered meanwhile in another tab, or the same file sent twice)
            line = rows[exc.row - 1].line if exc.row is not None and 0 < exc.row <= len(rows) else None
            error = _message(exc) if line is None else _("line %(line)d: %(error)s", line=line, error=_message(exc))
            flash(_("Nothing was imported: %(error)s", error=error), "error")
        else:
            count = len(batches)
            db_session().commit()
            flash(ngettext("%(count)s batch imported.", "%(count)s batches imported.", count, count=format_decimal(count)), "ok")
            return redirect(url_for("portal.producer_home", **scope), code=303)
    results = _preview(producer_id, rows)
    bad = sum(1 for r in results if r["error"])
    return render_template("portal/producer/import.html", columns=COLUMNS, scope=scope, results=results, bad=bad,
                           csv_text=csv_text, file_error=None), (422 if bad else 200)


# -- shoppers' reports ---------------------------------------------------------------------------------
@bp.route("/producer/reports")
@login_required(*STAFF)
def producer_reports():
    """Shoppers' reports about the producer's products, newest first, as inspectors filed them: what
    was bought where, from whom, the photos, and where the case stands (never the shopper's contact
    or the inspectors' notes: ``CaseService.view``)."""
    producer_id = _producer_id()
    actor = current_actor()
    service = case_service()
    page = page_number(request.args.get("page"))
    per_page = 20
    found = service.list(actor, producer_id=producer_id, limit=per_page + 1, offset=(page - 1) * per_page)
    reports = [service.view(actor, case) for case in found[:per_page]]
    db_session().rollback()
    return render_template("portal/producer/reports.html", reports=reports, labels=STATUS_LABEL, page=page,
                           more=len(found) > per_page, scope=_scope(producer_id))


# -- keys and tokens -------------------------------------------------------------------------------
@bp.route("/producer/keys", endpoint="producer_keys")
@login_required(*STAFF)
def producer_keys_page():
    producer_id = _producer_id()
    reg = registry()
    keys = producer_keys(reg, current_actor(), producer_id)
    producer = reg.producer(producer_id)
    return render_template("portal/producer/keys.html", producer=producer, keys=keys, scope=_scope(producer_id))


@bp.route("/producer/keys/rotate", methods=["POST"])
@login_required(*STAFF)
def producer_rotate_key():
    producer_id = _producer_id()
    key = rotate_key(registry(), current_actor(), producer_id)
    kid = key.kid
    db_session().commit()
    flash(_("New key %(kid)s is certified and signs new codes. Labels already printed keep verifying.", kid=kid), "ok")
    return redirect(url_for("portal.producer_keys", **_scope(producer_id)), code=303)


_NEW_TOKEN = "token_created"  # the token just created, for the page the creation redirects to, once


@bp.route("/producer/tokens", methods=["GET", "POST"])
@login_required(*STAFF)
def producer_tokens():
    """API tokens for the producer's own systems: created (shown once), listed, revoked.

    A created token is kept in the session and shown by the page the POST redirects to, then
    forgotten: reloading that page lists the tokens instead of posting the form again."""
    producer_id = _producer_id()
    actor = current_actor()
    admin = token_admin()
    errors: dict[str, str] = {}
    if request.method == "POST":
        days = request.form.get("days", type=int)
        try:
            plain, row = admin.create(actor, role=Role.PRODUCER, producer_id=producer_id,
                                      label=request.form.get("label") or "", days=days if days is not None else 0)
        except Invalid as exc:
            db_session().rollback()
            errors[exc.field or "days"] = _message(exc)
        else:
            created = {"token": seal(plain, _NEW_TOKEN), **admin.view(row)}
            db_session().commit()
            session[_NEW_TOKEN] = created  # the token sealed: the session cookie is signed, not encrypted
            return redirect(url_for("portal.producer_tokens", **_scope(producer_id)) + "#new-token", code=303)
    created = session.pop(_NEW_TOKEN, None)
    if created is not None and created.get("producer_id") != producer_id:
        created = None  # created for another producer (the authority in another tab): never shown here
    if created is not None:
        created = {**created, "token": unseal(created.get("token"), _NEW_TOKEN)}
        if created["token"] is None:
            created = None
    tokens = [admin.view(t) for t in admin.list(actor)
              if t.role == Role.PRODUCER.value and t.producer_id == producer_id]
    values = {name: request.form.get(name, "") for name in ("label", "days")} if errors else {}  # kept on an error
    response = Response(render_template("portal/producer/tokens.html", tokens=tokens, created=created, errors=errors,
                                        values=values, scope=_scope(producer_id)), status=422 if errors else 200)
    response.headers["Cache-Control"] = "no-store"  # the new token is in this page only
    return response


@bp.route("/producer/tokens/<int:token_id>/revoke", methods=["POST"])
@login_required(*STAFF)
def producer_revoke_token(token_id: int):
    producer_id = _producer_id()
    try:
        token_admin().revoke(current_actor(), token_id)
    except Conflict as exc:
        db_session().rollback()
        flash(_message(exc), "error")
    else:
        db_session().commit()
        flash(_("Token %(id)d is revoked.", id=token_id), "ok")
    return redirect(url_for("portal.producer_tokens", **_scope(producer_id)), code=303)
