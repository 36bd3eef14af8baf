"""Page texts that are not verdicts or reasons (those live in app/messages.py): catalogue msgids."""

from __future__ import annotations

from app.i18n import N_

__all__ = ["WHERE_KIND_LABEL", "FIELD_ERROR", "PHOTO_ERROR", "FLOOD_MESSAGE", "IMAGE_ERROR"]

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
    "BAD_LINK": N_("Enter a web address starting with http:// or https://."),
    "BAD_DATE": N_("Enter the date as day, month and year."),
    "DATE_IN_FUTURE": N_("The date cannot be in the future."),
    "CODE_OR_PHOTO": N_("Enter the code on the product, or add at least one photo of it."),
    "TOO_MANY_PHOTOS": N_("You can send at most 3 photos."),
    "PHOTO_TOO_LARGE": N_("A photo is larger than 10 MB. Choose a smaller photo."),
    "IMAGE_TOO_LARGE": N_("A photo has too many pixels (more than 50 megapixels). Choose a smaller photo."),
    "UNSUPPORTED_MEDIA_TYPE": N_("A file is not a photo. Send JPEG or PNG photos."),
    "IMAGE_UNDECODABLE": N_("A photo is damaged and cannot be opened. Choose another photo."),
}

#: Shown above a re-rendered form that had photos: browsers cannot keep chosen files.
PHOTO_ERROR = N_("Nothing you typed was lost, but please choose your photos again.")
FLOOD_MESSAGE = N_("You have sent many reports in a short time. Please wait an hour and try again; "
                   "what you typed is kept below.")

#: Verification photo rejected (the scan page's photo form).
IMAGE_ERROR = {
    "UNSUPPORTED_MEDIA_TYPE": N_("This file is not a photo. Take or choose a JPEG or PNG photo."),
    "IMAGE_UNDECODABLE": N_("This photo is damaged and cannot be opened. Please take it again."),
    "IMAGE_TOO_LARGE": N_("This photo is too large. Please take it again at a lower resolution."),
    "IMAGE_MISSING": N_("Choose or take a photo first."),
}
