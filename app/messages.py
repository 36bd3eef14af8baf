"""Catalogue entries for verdicts, reasons and audited actions (English source; Vietnamese in translations/vi)."""

from __future__ import annotations

from app.i18n import N_

__all__ = ["VERDICT_TITLE", "VERDICT_ADVICE", "TYPED_UNREADABLE_ADVICE", "NOT_A_PRODUCT_CODE_TITLE",
           "NOT_A_PRODUCT_CODE_ADVICE", "REASON_TEXT", "KEY_NOT_IN_TRUST_LIST_TEXT",
           "ACTION_TEXT", "CHANNEL_LABEL"]

VERDICT_TITLE = {
    "genuine": N_("Genuine"),
    "counterfeit": N_("Counterfeit"),
    "suspect": N_("Suspicious"),
    "recalled": N_("Recalled"),
    "expired": N_("Expired"),
    "unknown": N_("Not registered"),
    "unverifiable": N_("Cannot be verified"),
    "unreadable": N_("No code read"),
}

VERDICT_ADVICE = {
    "genuine": N_("This product was registered by its producer and the code on it is authentic."),
    "counterfeit": N_("Do not use this product. Keep it and the receipt, and report where you bought it."),
    "suspect": N_("Be careful: something about this code is not right (see why below), and it may be a copy. "
                  "Report where you bought it."),
    "recalled": N_("Do not use this product: its producer has recalled this batch. Return it to the seller."),
    "expired": N_("This product is past its expiry date. Do not use it."),
    "unknown": N_("This code is not in the national registry. Ask the seller, or report the product."),
    "unverifiable": N_("This barcode only names a product; it cannot prove where this item comes from."),
    "unreadable": N_("No product code could be read. Try again closer, with more light, or type the code."),
}

# "unreadable" when a code was read but is not a product's (a shop's payment QR, a web address) or
# was misread: "no code read, come closer" would say the opposite of the reason under it.
NOT_A_PRODUCT_CODE_TITLE = N_("Not a product code")
NOT_A_PRODUCT_CODE_ADVICE = N_("A code was read, but it is not a product's code (a payment QR code or a web address, "
                               "for example), or it was misread. Point the camera at the product's own QR code or "
                               "barcode, or type the code.")

# "unverifiable" for a code that names a batch (and perhaps a serial) but carries no signature: not
# "a barcode that only names a product", which the page had said of a QR code with a serial.
UNSIGNED_CODE_ADVICE = N_("This code names a batch but carries no signature, so it cannot prove where this item comes "
                          "from. Codes printed from this registry always carry one: ask the seller, or report the "
                          "product.")

# A typed text that is no code: camera advice ("closer, more light") would not help who typed it.
TYPED_UNREADABLE_ADVICE = N_("This is not a product code. Type the digits under the barcode, or the web address "
                             "the QR code holds. A serial number alone cannot be checked: scan the QR code, "
                             "which is what shows that an item is genuine.")

REASON_TEXT = {
    "SIGNATURE_INVALID": N_("The code's signature does not match: it was not issued by the registered producer."),
    "KEY_UNKNOWN": N_("The code was signed with a key the authority never certified."),
    "PREFIX_NOT_LICENSED": N_("The code was signed by a producer who is not licensed for this product number."),
    "SERIAL_CLONED": N_("This serial number has been checked in a pattern that suggests copies are in circulation."),
    "KEY_REVOKED": N_("The key that signed this code has been revoked by the authority."),
    "DATA_MISMATCH": N_("The details printed on the code do not match the registered batch."),
    "BATCH_RECALLED": N_("The producer or the authority has recalled this batch."),
    "EXPIRED": N_("The expiry date has passed."),
    "BATCH_UNKNOWN": N_("This batch is not in the registry."),
    "SERIAL_UNKNOWN": N_("This serial number was never issued for this batch."),
    "GTIN_UNKNOWN": N_("This product number is not in the registry."),
    "PLAIN_GTIN": N_("A code that names a product without its lot, such as a plain product barcode, proves nothing "
                     "about this item."),
    "UNSIGNED_CODE": N_("The code carries no signature, so its origin cannot be proven."),
    "NO_CODE_FOUND": N_("No barcode or QR code was found in the picture."),
    "MALFORMED_CODE": N_("The text read is not a valid product code."),
    "BAD_CHECK_DIGIT": N_("The product number's check digit is wrong: a misread or a fake code."),
    "OFFLINE_NO_RECALLS": N_("Checked offline: recalls since the trust list was issued are not known."),
    "OFFLINE_NO_CLONES": N_("Checked offline: copies of this serial cannot be detected without the registry."),
    "SCANNER_SLIP": N_("The scanner's text had a small slip that was corrected."),
    "RECALLED_SINCE": N_("This batch has been recalled since this check: take the goods off sale."),
    "OTHER_HOST": N_("This code leads to another website, not to the national registry: a phone's camera would open "
                     "that website. Trust only the verdict shown here, not what that website says."),
}

# Under OTHER_HOST on the verdict page: the website the code leads to.
OTHER_HOST_SITE = N_("Website in the code: %(host)s")

# Where a verification came from (a scan event's channel: ScanContext.channel), in a unit's history.
CHANNEL_LABEL = {
    "link": N_("Code scanned (link)"),
    "web": N_("Code typed on the website"),
    "image": N_("Photo of the code"),
    "api": N_("Another application (API)"),
    "inspection": N_("Inspection"),
    "report": N_("Shopper's report"),
    "cli": N_("Command line"),
    "page": N_("Website"),
}

# UNSIGNED_CODE offline for a signed code: its key is not in the trust list, which may predate the key.
KEY_NOT_IN_TRUST_LIST_TEXT = N_("Checked offline: the key that signed this code is not in the trust list, which may "
                                "be older than the key. Refresh the trust list and check again.")

# What each action of the audit trail (registry.audit.ACTIONS) is called on the authority's page.
ACTION_TEXT = {
    "producer.admit": N_("Producer admitted"),
    "producer.log": N_("Earlier producer admission logged"),
    "key.certify": N_("Key certified"),
    "key.rotate": N_("Key rotated"),
    "key.revoke": N_("Key revoked"),
    "batch.register": N_("Batch registered"),
    "batch.correct": N_("Batch record corrected"),
    "serials.issue": N_("Serial numbers issued"),
    "batch.recall": N_("Batch recalled"),
    "serial.flag_clear": N_("Clone flag cleared"),
    "scans.purge": N_("Old scan events deleted"),
    "reports.forget_contacts": N_("Shoppers' contacts removed from cases decided long ago"),
    "inspection.open": N_("Inspection opened"),
    "inspection.check": N_("Inspection check recorded"),
    "inspection.close": N_("Inspection closed"),
    "inspection.evidence": N_("Evidence file issued"),
    "case.assign": N_("Case assigned"),
    "case.transition": N_("Case status changed"),
    "case.note": N_("Case note added"),
    "case.publish": N_("Case published"),
    "publication.publish": N_("Warning or violator published"),
    "publication.withdraw": N_("Publication withdrawn"),
    "user.create": N_("Account created"),
    "user.login": N_("Logged in"),
    "user.login_failed": N_("Wrong password"),
    "user.login_refused": N_("Login refused (account locked or deactivated)"),
    "user.logout": N_("Logged out"),
    "user.password_change": N_("Password changed by its owner"),
    "user.password_reset": N_("Password reset"),
    "user.unlock": N_("Account unlocked"),
    "user.deactivate": N_("Account deactivated"),
    "user.reactivate": N_("Account reactivated"),
    "token.create": N_("API token created"),
    "token.revoke": N_("API token revoked"),
    "keys.rewrap": N_("Private keys encrypted under a new passphrase"),
}
