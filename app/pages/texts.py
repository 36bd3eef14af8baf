"""Page texts that are not verdicts or reasons (those live in app/messages.py): catalogue msgids."""

from __future__ import annotations

from app.i18n import N_

__all__ = ["WHERE_KIND_LABEL", "FIELD_ERROR", "PHOTO_ERROR", "FLOOD_MESSAGE", "IMAGE_ERROR", "HTTP_ERROR",
           "error_title", "SESSION_EXPIRED", "TOO_LARGE", "FOLLOWUP_STATUS_TEXT", "FOLLOWUP_MISSING", "FOLLOWUP_UNKNOWN"]

WHERE_KIND_LABEL = {
    "shop": N_("A shop"),
    "market": N_("A market stall"),
    "ecommerce": N_("An online shop (Shopee, Lazada, Tiki...)"),
    "social": N_("A social-network page or group"),
    "livestream": N_("A livestream"),
    "other": N_("Somewhere else"),
}

#: (field error code from registry.reports) -> message shown next to the field.
FIELD_ERROR = {
    "FIELD_REQUIRED": N_("Please fill in this field."),
    "BAD_CHOICE": N_("Please choose one of the options."),
    "TOO_LONG": N_("This is too long."),
    "BAD_LINK": N_("Enter a web address, such as shopee.vn/shop/123, with no spaces."),
    "BAD_DATE": N_("Enter the date as day, month and year."),
    "DATE_IN_FUTURE": N_("The date cannot be in the future."),
    "CODE_OR_PHOTO": N_("Enter the code on the product, or add at least one photo of it."),
    "TOO_MANY_PHOTOS": N_("You can send at most 3 photos."),
    "PHOTO_TOO_LARGE": N_("A photo is larger than 10 MB. Choose a smaller photo."),
    "IMAGE_TOO_LARGE": N_("A photo has too many pixels (more than 50 megapixels). Choose a smaller photo."),
    "UNSUPPORTED_MEDIA_TYPE": N_("A file is not a photo. Send JPEG, PNG or WebP photos."),
    "IMAGE_UNDECODABLE": N_("A photo is damaged and cannot be opened. Choose another photo."),
    "IMAGE_EMPTY": N_("A photo is an empty file. Choose it again, or take another photo."),
    "NUL_CHARACTER": N_("This holds a NUL character, which no text may hold. Remove it and try again."),
}

#: Shown above a re-rendered form that had photos: browsers cannot keep chosen files.
PHOTO_ERROR = N_("Nothing you typed was lost, but please choose your photos again.")
FLOOD_MESSAGE = N_("You have sent many reports in a short time. Please wait an hour and try again; "
                   "what you typed is kept below.")

#: Verification photo rejected (the scan page's photo form).
IMAGE_ERROR = {
    "UNSUPPORTED_MEDIA_TYPE": N_("This file is not a photo. Take or choose a JPEG, PNG or WebP photo."),
    "IMAGE_UNDECODABLE": N_("This photo is damaged and cannot be opened. Please take it again."),
    "IMAGE_TOO_LARGE": N_("This photo is too large. Please take it again at a lower resolution."),
    "PHOTO_TOO_BIG": N_("This photo's file is too large to send. Please take it again at a lower resolution, or "
                        "photograph the code alone, closer."),
    "IMAGE_MISSING": N_("Choose or take a photo first."),
}

#: An HTTP error shown as a page (the API answers JSON with the error's own English text).
HTTP_ERROR = {
    400: N_("The request could not be understood. Go back and try again."),
    403: N_("You are not allowed to do this."),
    404: N_("There is no page at this address. Check the link, or scan the code again."),
    405: N_("This page cannot be used that way. Go back and try again."),
    409: N_("Someone else changed this at the same moment. Reload the page and try again."),
    429: N_("Too many requests from your connection. Please wait a minute and try again."),
    500: N_("An internal error occurred; it has been logged. Please try again later."),
    503: N_("The service is busy for a moment. Please try again in a few seconds."),
}
#: An error page's heading (and its tab's title), by status: what happened, in words; the number
#: stays below it, small, for whoever supports the user.
HTTP_ERROR_TITLE = {
    403: N_("Not allowed"),
    404: N_("Page not found"),
    405: N_("Not available this way"),
    409: N_("Changed by someone else"),
    413: N_("Too large to send"),
    429: N_("Too many requests"),
    503: N_("The service is busy"),
}


def error_title(status: int) -> str:
    """An error page's heading, untranslated (``gettext`` it): a 4xx not listed could not be done,
    a 5xx went wrong on our side."""
    return HTTP_ERROR_TITLE.get(status) or (N_("This could not be done") if status < 500
                                            else N_("Something went wrong"))


TOO_LARGE = N_("What you sent is too large (at most %(mib)s MB).")
#: A 413 for a form over its own limits (a text field, the number of parts), the body within its own.
FIELD_TOO_LARGE = N_("A text you sent is too long (at most %(kb)s KB in one field), or the form has too "
                     "many parts.")
#: A form sent without its session's CSRF token (a session that expired, a browser restarted).
SESSION_EXPIRED = N_("Your session expired before the form was sent, so nothing was saved. "
                     "Please check what you typed, choose any photos again and send it again.")

#: A report's status as its shopper reads it (registry.reports.FOLLOWUP_STATUS): title, then what it means.
FOLLOWUP_STATUS_TEXT = {
    "received": (N_("Received"), N_("Your report is waiting for an inspector.")),
    "investigating": (N_("Being investigated"), N_("An inspector is looking into your report.")),
    "confirmed": (N_("Counterfeit confirmed"),
                  N_("The authority confirmed that the product was counterfeit. Thank you for reporting it.")),
    "closed": (N_("Closed"), N_("The authority looked into your report and did not confirm a counterfeit.")),
}
FOLLOWUP_MISSING = N_("Type the case number and the follow-up code you were given when you sent the report.")
FOLLOWUP_UNKNOWN = N_("No report has this case number and follow-up code. Check both, as written when you sent "
                      "the report.")
