"""Languages: Vietnamese first, English second, every string from one catalogue (Babel .po/.mo)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from babel.support import NullTranslations, Translations
from flask import request

__all__ = ["LANGUAGES", "select_locale", "both", "translations_for", "N_"]

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
