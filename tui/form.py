"""The Contribute form's rules, headless: licences to pick from, sizes, paths. No textual."""

from __future__ import annotations

import os
import re

from commons.service import LICENCE_NOT_STATED

__all__ = ["LICENCE_NOT_STATED", "LICENCES", "fmt_size", "licence_options", "looks_like_path"]

# Common choices; any other can be set as the default with `commons config set licence`.
LICENCES = (
    LICENCE_NOT_STATED,
    "CC-BY-4.0",
    "CC-BY-SA-4.0",
    "CC0-1.0",
    "all rights reserved",
)

_SUFFIX = re.compile(r"\.(md|markdown|txt|text|html?|xhtml|pdf)$", re.IGNORECASE)


def licence_options(default: str | None) -> list[tuple[str, str]]:
    """(label, value) for the licence picker; the person's default is offered too."""
    choices = list(LICENCES)
    if default and default not in choices:
        choices.insert(1, default)
    labels = {LICENCE_NOT_STATED: "not stated (choose one)"}
    return [(labels.get(c, c), c) for c in choices]


def looks_like_path(text: str) -> bool:
    """Whether a title box holds a file path rather than a title."""
    text = text.strip()
    if not text:
        return False
    if os.path.isfile(os.path.expanduser(text)):
        return True
    if " " in text:
        return False
    return text.startswith(("/", "~/", "./", "../")) or bool(_SUFFIX.search(text))


def fmt_size(n: int) -> str:
    """'812 B', '4.2 KB', '1.3 MB'."""
    if n < 1000:
        return f"{n} B"
    if n < 1_000_000:
        return f"{n / 1000:.1f} KB"
    return f"{n / 1_000_000:.1f} MB"
