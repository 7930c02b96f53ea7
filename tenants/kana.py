"""Japanese reading (よみがな) helpers: people are listed in 50-on order (あいうえお順) by their kana."""
from __future__ import annotations

import re
import unicodedata

_KANA = re.compile(r"^[\u3041-\u3096\u309d\u309e\u30a1-\u30fa\u30fc\u30fd\u30fe\u3000 ・]+$")


def normalize_kana(text: str) -> str:
    """NFKC (half-width katakana to full width), then the reading as typed, trimmed."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def is_kana(text: str) -> bool:
    return bool(_KANA.match(normalize_kana(text)))


def kana_sort_key(text: str) -> str:
    """A key whose code-point order is 50-on order: katakana folded to hiragana, spaces and dots dropped.

    Hiragana code points already run あ ぃ い … ん with voiced kana right after their plain form (か が き ぎ),
    which is the order of a Japanese dictionary, so folding katakana is all that is needed.
    """
    out = []
    for ch in normalize_kana(text):
        code = ord(ch)
        if 0x30A1 <= code <= 0x30F6:
            out.append(chr(code - 0x60))
        elif ch in " \u3000・":
            continue
        else:
            out.append(ch)
    return "".join(out)
