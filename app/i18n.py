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
           "country_options"]

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



def local_date(value: object, format: str = "long") -> str:
    """A date (``date``, ``datetime`` or ISO text) in the page language's format; times are shown
    as the date in Vietnam. Empty for missing or unreadable values."""
    from flask_babel import format_date

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
