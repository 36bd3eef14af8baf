"""GS1 syntax knowledge read from GS1's Barcode Syntax Dictionary (vendored under ``data/``)."""

from verification.gs1.dictionary import (
    UNIMPLEMENTED_LINTERS,
    AIEntry,
    AIValueError,
    AssociationError,
    Component,
    SyntaxDictionary,
    century_for,
    get_dictionary,
    load_dictionary,
)

__all__ = [
    "AIEntry",
    "AIValueError",
    "AssociationError",
    "Component",
    "SyntaxDictionary",
    "UNIMPLEMENTED_LINTERS",
    "century_for",
    "get_dictionary",
    "load_dictionary",
]
