"""How the core's commands print JSON (dates, ids and names: `commons.display`)."""

from __future__ import annotations

import json
import sys
from typing import Any

from commons.display import author_label


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")


def item_author(item: dict[str, Any]) -> str:
    """The author label of a JSON summary or citation."""
    return author_label(str(item.get("author", "")), item.get("author_name"))


def origin_label(origin: str) -> str:
    """Where a stored object came from, as a reader says it: the peer's address,
    a bundle file, the seeds, or this peer."""
    if origin == "local":
        return "this peer (added here)"
    if origin.startswith("import:"):
        return f"the bundle {origin.removeprefix('import:')}"
    if origin.startswith(("http://", "https://")):
        return f"the peer {origin}"
    return origin
