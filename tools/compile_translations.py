"""Compile the message catalogue (.po -> .mo), or check that the committed .mo is up to date.

    python tools/compile_translations.py          # write app/translations/*/LC_MESSAGES/messages.mo
    python tools/compile_translations.py --check  # exit 1 if a .mo differs from its .po

To find new strings: ``pybabel extract -F babel.cfg -k N_ -o /tmp/messages.pot .`` then
``pybabel update -i /tmp/messages.pot -d app/translations`` and translate the new entries.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po

CATALOGUE = Path(__file__).resolve().parent.parent / "app" / "translations"


def compiled(po_path: Path) -> bytes:
    with po_path.open("rb") as fh:
        catalog = read_po(fh)
    out = io.BytesIO()
    write_mo(out, catalog, use_fuzzy=False)
    return out.getvalue()


def content(mo: bytes) -> tuple:
    """What a compiled catalogue says: its messages and its headers, less the Babel version that
    wrote it (``Generated-By``), so that a new Babel release does not make a committed .mo stale."""
    catalog = read_mo(io.BytesIO(mo))
    headers = tuple((name, value) for name, value in catalog.mime_headers if name != "Generated-By")
    messages = sorted((repr(m.context), repr(m.id), repr(m.string)) for m in catalog if m.id)
    return headers, tuple(messages)


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for po_path in sorted(CATALOGUE.glob("*/LC_MESSAGES/messages.po")):
        mo_path = po_path.with_suffix(".mo")
        data = compiled(po_path)
        if check:
            if not mo_path.exists() or content(mo_path.read_bytes()) != content(data):
                stale.append(mo_path)
        else:
            mo_path.write_bytes(data)
            print(f"compiled {mo_path.relative_to(CATALOGUE.parent.parent)}")
    for path in stale:
        print(f"out of date: {path} (run python tools/compile_translations.py)", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
