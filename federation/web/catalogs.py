"""Compile the message catalogues: `python -m federation.web.catalogs` after editing a .po file.

Kept apart from the web package's imports so running it never loads the app.
"""
from __future__ import annotations

import io
import sys
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

TRANSLATIONS = Path(__file__).resolve().parent.parent / "translations"


def compiled(po_path: Path) -> bytes:
    """The .mo a .po compiles to (fuzzy entries left out, as they are unchecked)."""
    with po_path.open("rb") as fh:
        catalog = read_po(fh, locale=po_path.parent.parent.name)
    out = io.BytesIO()
    write_mo(out, catalog, use_fuzzy=False)
    return out.getvalue()


def compile_catalogs(root: Path = TRANSLATIONS) -> list[Path]:
    written = []
    for po_path in sorted(root.glob("*/LC_MESSAGES/messages.po")):
        mo_path = po_path.with_suffix(".mo")
        mo_path.write_bytes(compiled(po_path))
        written.append(mo_path)
    return written


if __name__ == "__main__":
    for path in compile_catalogs():
        print(path.relative_to(TRANSLATIONS.parent), file=sys.stderr)
