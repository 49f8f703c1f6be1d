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
