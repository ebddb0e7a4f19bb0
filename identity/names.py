"""The one validator every name field goes through (projects, users, key pairs, flavors, images,
instances): 1 to ``max_length`` characters after trimming, none of them invisible or control
characters. Refused: Unicode categories Cc (controls), Cf (format: the right-to-left override U+202E
that makes ``gpj.exe`` read ``exe.jpg``, the BOM U+FEFF, zero-width spaces and joiners), Cs
(surrogates), Co (private use), Zl/Zp (line and paragraph separators). Apps with a narrower alphabet
apply their own pattern after this."""

from __future__ import annotations

import unicodedata
from typing import Any

from .errors import InvalidInput

REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})


def invisible_characters(text: str) -> list[str]:
    """The code points of ``text`` a name may not contain, as ``U+XXXX`` strings (in order, once each)."""
    found: list[str] = []
    for char in text:
        if unicodedata.category(char) in REFUSED_CATEGORIES:
            point = f"U+{ord(char):04X}"
            if point not in found:
                found.append(point)
    return found


def clean_name(value: Any, what: str, max_length: int = 255) -> str:
    """``value`` trimmed, or InvalidInput naming the rule it breaks."""
    name = value.strip() if isinstance(value, str) else ""
    if not name or len(name) > max_length:
        raise InvalidInput(f"{what} name must be 1-{max_length} characters.")
    bad = invisible_characters(name)
    if bad:
        raise InvalidInput(
            f"{what} name contains invisible or control characters ({', '.join(bad[:5])}): "
            "names must read as they are."
        )
    return name
