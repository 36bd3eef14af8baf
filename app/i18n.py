"""Languages: Vietnamese first, English second, every string from one catalogue (Babel .po/.mo)."""

from __future__ import annotations

from datetime import date, datetime, timezone
from functools import lru_cache
from pathlib import Path

from babel import Locale
from babel.support import NullTranslations, Translations
from flask import request

from verification.localtime import VIETNAM_TIME  # the verdicts' local time, also the portals'

__all__ = ["LANGUAGES", "select_locale", "both", "translations_for", "N_", "local_date", "country_name",
           "country_options", "written_in"]

LANGUAGES = ("vi", "en")
CATALOGUE = Path(__file__).resolve().parent / "translations"
LANG_COOKIE = "lang"


def N_(message: str) -> str:
    """Mark a string for the catalogue without translating it here."""
    return message


def select_locale() -> str:
    """The switch (remembered in a cookie) first, then ``?lang=``, then Accept-Language, then Vietnamese."""
    chosen = request.args.get("lang") or request.cookies.get(LANG_COOKIE)
    if chosen in LANGUAGES:
        return chosen
    return request.accept_languages.best_match(LANGUAGES) or "vi"


@lru_cache(maxsize=None)
def translations_for(lang: str) -> NullTranslations:
    if lang == "en":  # English is the catalogue's source language
        return NullTranslations()
    return Translations.load(str(CATALOGUE), [lang], domain="messages")


def both(message: str, **params: object) -> dict[str, str]:
    """``{"vi": ..., "en": ...}`` for a catalogue message (as the API's reason messages carry)."""
    return {lang: translations_for(lang).gettext(message) % params if params else translations_for(lang).gettext(message)
            for lang in LANGUAGES}


# -- formatting for pages (dates in the local format, country names in the page's language) -------



#: Vietnamese dates as Vietnamese write them, not CLDR's "7 tháng 12, 2026" (an English order with a
#: comma): "7 tháng 12 năm 2026" in sentences (the catalogue's sentences put "ngày" before it),
#: "07/12/2026" in lists.
VIETNAMESE_DATE = {"long": "d 'tháng' M 'năm' y", "medium": "dd/MM/y", "short": "dd/MM/yy"}


def local_date(value: object, format: str = "long") -> str:
    """A date (``date``, ``datetime`` or ISO text) in the page language's format; times are shown
    as the date in Vietnam. Empty for missing or unreadable values."""
    from flask_babel import format_date, get_locale

    if value in (None, ""):
        return ""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00")) if "T" in value else date.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        value = value.astimezone(VIETNAM_TIME).date()
    if not isinstance(value, date):
        return str(value)
    locale = get_locale()
    if locale is not None and locale.language == "vi":
        format = VIETNAMESE_DATE.get(format, format)
    return format_date(value, format=format)


def country_options() -> list[tuple[str, str]]:
    """Every ISO 3166-1 country as ``(code, name in the page's language)``, Viet Nam first, the
    rest by name as a reader of the language looks for it (accents aside)."""
    import unicodedata

    import pycountry
    from flask_babel import get_locale

    names = (get_locale() or Locale.parse("vi")).territories

    def plain(text: str) -> str:
        return "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c)).casefold()

    options = [(c.alpha_2, names.get(c.alpha_2, c.name)) for c in pycountry.countries]
    options.sort(key=lambda option: (option[0] != "VN", plain(option[1])))
    return options


def country_name(code: object) -> str:
    """``VN`` -> "Việt Nam" / "Vietnam"; unknown codes are shown as given."""
    from flask_babel import get_locale

    text = str(code or "").strip()
    if len(text) != 2:
        return text
    locale = get_locale() or Locale.parse("vi")
    return locale.territories.get(text.upper(), text)


# Marks that only Vietnamese writing puts on Latin letters (after NFD): the breve (ă), the horn
# (ơ, ư), the hook above (ả) and the dot below (ạ), and a tone over a circumflex or a breve (ế, ẳ);
# and đ, which has no decomposition. A grave, an acute, a circumflex or a tilde alone is French,
# Spanish or Portuguese as well (café, crêpe, São Paulo), and decides nothing; a tilde on i, u or y
# (ĩ, ũ, ỹ) is Vietnamese.
_VIETNAMESE_MARKS = frozenset("\u0306\u031b\u0309\u0323")
_TONES = frozenset("\u0300\u0301\u0303\u0309\u0323")
_STACK_BASES = frozenset("\u0302\u0306")


def written_in(text: object) -> str | None:
    """``"vi"`` for text that holds a letter only Vietnamese writing uses (``"Nước mắm Phú Quốc"``,
    ``"Xưởng Ea Tu"``), else None: what producers, inspectors and the authority type is shown as
    typed, and on an English page a screen reader should read a Vietnamese name in Vietnamese
    (WCAG 3.1.2, the language of parts). Names without such a letter are left to the page's
    language: nothing in them says otherwise."""
    import unicodedata

    value = str(text or "")
    if value.isascii():
        return None
    if "đ" in value or "Đ" in value:
        return "vi"
    decomposed = unicodedata.normalize("NFD", value)
    for i, char in enumerate(decomposed):
        if char in _VIETNAMESE_MARKS:
            return "vi"
        if char in _TONES and i and (decomposed[i - 1] in _STACK_BASES
                                     or (char == "\u0303" and decomposed[i - 1] in "iuyIUY")):
            return "vi"
    return None
