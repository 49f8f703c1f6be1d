"""How objects are shown to people: dates, short ids and keys, author labels.

One spelling for every front end (the CLI, the node's commands, the TUI), so the
same document reads the same wherever it is listed. Times are shown in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime

KEY_CHARS = 8  # hex characters of a public key shown beside a name
ID_CHARS = 12  # hex characters of an object id shown in lists


def short_key(key_hex: str) -> str:
    return key_hex[:KEY_CHARS]


def short_id(id_hex: str) -> str:
    return id_hex[:ID_CHARS]


def author_label(author: str, name: str | None) -> str:
    """'Ana (1f2e3d4c)': the display name, or '?', and the start of the key."""
    return f"{name or '?'} ({short_key(author)})"


def fmt_date(ts: float | None, missing: str = "-") -> str:
    """'2026-05-09' (UTC), or `missing` when there is no time."""
    if ts is None:
        return missing
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d")


def fmt_datetime(ts: float | None, missing: str = "-") -> str:
    """'2026-05-09 14:03' (UTC), or `missing` when there is no time."""
    if ts is None:
        return missing
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M")
