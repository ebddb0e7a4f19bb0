"""The value checks every app's services share: whole numbers, booleans and string maps (flavor extra
specs, image properties, instance metadata). Each raises InvalidInput with a message naming the value;
names have theirs in ``identity.names``."""

from __future__ import annotations

import re
from typing import Any

from .errors import InvalidInput

MAX_INT = 2**31 - 1  # the largest a 32-bit integer column holds


def clean_int(value: Any, what: str, low: int = 0, high: int = MAX_INT) -> int:
    """A whole number from ``low`` to ``high`` (a boolean is none, nor is "5")."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"{what} must be a whole number from {low} to {high}.")
    return value


def clean_bool(value: Any, what: str) -> bool:
    """``True`` or ``False`` (not 1 nor "yes")."""
    if not isinstance(value, bool):
        raise InvalidInput(f"{what} must be true or false.")
    return value


def clean_description(value: Any, max_length: int = 1024, *, printable: bool = False) -> str:
    """Optional free text (None or "" is none) of at most ``max_length`` characters; with
    ``printable`` no control characters but tabs and newlines."""
    if value in (None, ""):
        return ""
    if not isinstance(value, str) or len(value) > max_length:
        raise InvalidInput(f"A description is text of at most {max_length} characters.")
    if printable and any(ord(c) < 32 and c not in "\t\n" for c in value):
        raise InvalidInput("A description holds no control characters but tabs and newlines.")
    return value


def clean_string_map(
    value: Any,
    *,
    what: str,
    item: str,
    too_many: str,
    max_items: int,
    max_key: int,
    max_value: int,
    key_re: re.Pattern | None = None,
    keys_are: str = "keys must be 1-{max_key} characters",
) -> dict[str, str]:
    """An object of string keys to string values (None is empty): at most ``max_items`` entries, keys
    of 1-``max_key`` characters (matching ``key_re`` when given, ``keys_are`` saying how), values of at
    most ``max_value``. Messages name the map (``what``: "Extra specs"), one entry (``item``: "Extra
    spec") and the limit (``too_many``: "A flavor has at most {max_items} extra specs")."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"{what} must be an object of string keys to string values.")
    if len(value) > max_items:
        raise InvalidInput(too_many.format(max_items=max_items) + ".")
    for key, entry in value.items():
        if (
            not isinstance(key, str)
            or not key.strip()
            or len(key) > max_key
            or (key_re is not None and not key_re.match(key))
        ):
            raise InvalidInput(f"{item} {keys_are.format(max_key=max_key)}.")
        if not isinstance(entry, str) or len(entry) > max_value:
            raise InvalidInput(f"{item} {key!r} must have a string value of at most {max_value} characters.")
    return dict(value)


def clean_tags(value: Any, *, what: str, max_items: int, max_length: int, forbidden: str = "/") -> list[str]:
    """A list of tags (an image's, an instance's): strings of 1-``max_length`` characters without
    any of ``forbidden``, duplicates dropped in order, at most ``max_items``."""
    if not isinstance(value, list | tuple):
        raise InvalidInput("Tags must be a list of strings.")
    tags: list[str] = []
    for tag in value:
        if not isinstance(tag, str) or not 1 <= len(tag) <= max_length or any(c in tag for c in forbidden):
            without = " or ".join(repr(c) for c in forbidden)
            raise InvalidInput(f"A tag must be 1-{max_length} characters without {without}.")
        if tag not in tags:
            tags.append(tag)
    if len(tags) > max_items:
        raise InvalidInput(f"{what} has at most {max_items} tags.")
    return tags
