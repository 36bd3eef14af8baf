"""Domain errors raised in a portal view become pages, not JSON: 403, 404, 409/422 with the message."""

from __future__ import annotations

from flask import Blueprint, g, redirect, render_template, url_for

from registry.errors import Conflict, Forbidden, Invalid, NotFound, RegistryError, Unauthorized, Unavailable

from app.errors import log_unavailable
from app.pages.texts import error_title
from app.i18n import N_
from app.request_ids import error_reference
from app.security import request_target
from app.services import db_session

__all__ = ["register_portal_errors", "ERROR_TEXT", "error_text"]

#: Domain error codes -> what the portal says (the domain's own message, in English, is kept as a
#: technical detail under it).
ERROR_TEXT = {
    "FIELD_REQUIRED": N_("Please fill in this field."),
    "BAD_GTIN": N_("A GTIN has 8, 12, 13 or 14 digits."),
    "BAD_CHECK_DIGIT": N_("The check digit is wrong: check the number again."),
    "BAD_LOT": N_("A lot has 1 to 20 characters: letters without accents or spaces, digits, and the symbols GS1 "
                   "allows, such as - . / _"),
    "LOT_UNPRINTABLE": N_("A lot of only \".\" or \"..\" cannot be printed in a code's web address."),
    "BAD_GLN": N_("A GLN has 13 digits with a correct check digit."),
    "BAD_COUNTRY": N_("Enter a two-letter country code, such as VN."),
    "BAD_DATE": N_("Enter a valid date (year-month-day); check the order of the dates."),
    "BAD_PERIOD": N_("The last day comes before the first."),
    "BAD_EVENTS": N_("Choose the kind of events from the list."),
    "DATE_IN_FUTURE": N_("The date cannot be in the future."),
    "DATE_OUT_OF_RANGE": N_("Codes carry this date with a two-digit year: it must be within 50 years of today."),
    "TOO_MANY_CERTIFICATIONS": N_("A batch lists at most 20 certifications."),
    "BAD_QUANTITY": N_("The quantity is a whole number above zero."),
    "BAD_COUNT": N_("Enter a number of serials between 1 and 100,000."),
    "BAD_PREFIX": N_("A GS1 company prefix has 4 to 12 digits."),
    "PREFIX_REQUIRED": N_("Choose at least one GS1 company prefix for the key."),
    "BAD_TAX_CODE": N_("A Vietnamese tax code has 10 digits, or 10 digits, a hyphen and 3 digits for a branch (0312345673-001), whose 10th digit checks the others: check the number again; another country's is its own number, in letters and digits."),
    "BAD_PUBLIC_KEY": N_("The public key must be a raw 32-byte Ed25519 key in base64url."),
    "BAD_USERNAME": N_("A username is 2 to 100 characters: letters, digits and . _ @ -"),
    "BAD_ROLE": N_("Choose a role."),
    "BAD_USER_SCOPE": N_("Only producer staff are bound to a producer."),
    "BAD_EXPIRY": N_("A token lasts between 1 and 730 days."),
    "LABEL_RESERVED": N_("The label \"demo\" is kept for the demo's tokens: choose another."),
    "PASSWORD_TOO_SHORT": N_("A password needs at least 10 characters."),
    "PASSWORD_TOO_LONG": N_("This password is too long."),
    "TOO_LONG": N_("This is too long."),
    "BAD_CHARACTER": N_("This holds an invisible control character (pasted with the text, perhaps): type it again."),
    "NUL_CHARACTER": N_("This holds a NUL character, which no text may hold. Remove it and try again."),
    "PREFIX_NOT_LICENSED": N_("This GTIN is outside your certified GS1 company prefixes."),
    "PREFIX_NOT_OWNED": N_("This prefix is not one of the producer's GS1 company prefixes."),
    "BATCH_EXISTS": N_("This GTIN and lot are already registered."),
    "BATCH_RECALLED": N_("This batch is recalled."),
    "BATCH_MISMATCH": N_("A correction cannot change the GTIN or the lot: register a new batch."),
    "EXPIRY_FIXED": N_("The expiry date cannot be corrected: codes already printed carry it. Recall the batch and register a new lot."),
    "NOTHING_CHANGED": N_("Nothing was changed: correct at least one field."),
    "VERSION_CONFLICT": N_("The record was corrected meanwhile: open it again."),
    "NO_ACTIVE_KEY": N_("The producer has no active certified key: ask the authority to certify one."),
    "KEY_NOT_CUSTODIAL": N_("This key is kept by the producer: the service cannot sign with it."),
    "KEY_EXISTS": N_("This key is already certified."),
    "KEY_ALREADY_REVOKED": N_("This key is already revoked."),
    "PRODUCER_EXISTS": N_("A producer with this tax code is already admitted."),
    "PREFIX_TAKEN": N_("This GS1 company prefix overlaps another producer's prefix."),
    "PRODUCER_UNKNOWN": N_("There is no such producer."),
    "USER_EXISTS": N_("This username is taken."),
    "SELF_DEACTIVATION": N_("You cannot deactivate your own account."),
    "USER_ALREADY_DEACTIVATED": N_("This account is already deactivated."),
    "USER_ALREADY_ACTIVE": N_("This account is already active."),
    "TOKEN_ALREADY_REVOKED": N_("This token is already revoked."),
    "ALREADY_WITHDRAWN": N_("This publication is already withdrawn."),
    "ROLE_FORBIDDEN": N_("Your role does not allow this."),
    "NOT_YOUR_PRODUCER": N_("This belongs to another producer."),
    "CSV_EMPTY": N_("The file has no rows."),
    "CSV_UNREADABLE": N_("The file is not a CSV file in UTF-8."),
    "CSV_HEADER": N_("The first line must be the template's header."),
    "CSV_TOO_LARGE": N_("The file is too large for one import."),
    "BAD_TRANSITION": N_("This case was moved on meanwhile, perhaps by someone else: reload it to see where it stands."),
    "CASE_CLOSED": N_("This case is closed (confirmed counterfeit or dismissed), perhaps by someone else meanwhile: move it back to investigating first."),
    "CASE_NOT_CONFIRMED": N_("Only a case confirmed counterfeit can be published; this one was moved meanwhile, perhaps by someone else: reload it to see where it stands."),
    "ALREADY_PUBLISHED": N_("This case is already published."),
    "CASE_PUBLISHED": N_("This case is on the public list of violators: the authority withdraws the publication "
                         "before the case is reopened or dismissed."),
    "KEYS_UNAVAILABLE": N_("This server cannot sign right now: its signing keys cannot be opened. Nothing was saved. Tell the service's operators."),
    # what a link or a typed address named and the registry does not hold
    "BATCH_UNKNOWN": N_("There is no such batch (GTIN and lot)."),
    "SERIAL_UNKNOWN": N_("There is no such serial in this batch."),
    "KEY_UNKNOWN": N_("There is no such key."),
    "USER_UNKNOWN": N_("There is no such account."),
    "TOKEN_UNKNOWN": N_("There is no such token."),
    "CASE_UNKNOWN": N_("There is no such case."),
    "REPORT_UNKNOWN": N_("There is no such report."),
    "INSPECTION_UNKNOWN": N_("There is no such inspection."),
    "PUBLICATION_UNKNOWN": N_("There is no such publication."),
    "PHOTO_UNKNOWN": N_("There is no such photo."),
    "ATTACHMENT_UNKNOWN": N_("There is no such attachment."),
    "NOT_YOUR_INSPECTION": N_("This inspection belongs to another inspector: you can read it and download its "
                              "evidence file, but not add checks to it or close it."),
    # label sheets asked for by an address (the batch page links only to what exists)
    "BAD_STOCK": N_("The registry prints no such label stock: choose one on the batch's page."),
    "BAD_RANGE": N_("This batch's labels have no such part: choose one on the batch's page."),
    "TOO_MANY_LABELS": N_("This batch has more codes than one PDF holds: download its labels in the parts the "
                          "batch's page lists."),
    "SERIAL_COLLISION": N_("A new serial number happened to match an existing one, so none were issued. Please "
                           "try again."),
}


def error_text(exc: RegistryError) -> str:
    """The catalogue message for a domain error (untranslated msgid; templates pass it to ``_``)."""
    return ERROR_TEXT.get(exc.code, "")


def register_portal_errors(bp: Blueprint) -> None:
    @bp.errorhandler(RegistryError)
    def _registry_error(exc: RegistryError):
        db_session().rollback()
        if isinstance(exc, Unauthorized) and g.get("actor") is None:
            return redirect(url_for("portal.login", next=request_target(), notice="login"))
        if isinstance(exc, Forbidden):
            return render_template("portal/forbidden.html", message=exc.message, hint=error_text(exc)), 403
        status = 404 if isinstance(exc, NotFound) else 409 if isinstance(exc, Conflict) else \
            422 if isinstance(exc, Invalid) else 503 if isinstance(exc, Unavailable) else 400
        if status >= 500:
            log_unavailable(exc)
        return render_template("portal/problem.html", status=status, title=error_title(status), message=exc.message,
                               hint=error_text(exc),
                               reference=error_reference(status) if status >= 500 else None), status
