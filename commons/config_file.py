"""The home's `config.toml`: which keys it may hold, and how `commons config set` writes it.

Reading is `commons.settings.read_config` (tomllib). The standard library has no
TOML writer, and the file holds only strings and lists of strings in at most one
level of tables, so this module writes that small subset itself.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from commons.model.errors import CommonsError
from commons.settings import CONFIG_FILE, read_config


@dataclass(frozen=True)
class ConfigKey:
    name: str  # dotted: "llm.url" is `url` in the [llm] table
    help: str
    is_list: bool = False


KEYS: tuple[ConfigKey, ...] = (
    ConfigKey("name", "your display name when a home is made (change it with `commons name`)"),
    ConfigKey("licence", "the licence of what you add, unless --licence says otherwise"),
    ConfigKey("listen", "where `commons serve` listens (HOST:PORT)"),
    ConfigKey("peers", "peers to gossip with, comma-separated URLs", is_list=True),
    ConfigKey("policy", "the accept policy file (JSON) of `commons mirror`"),
    ConfigKey("embedder", "the embedding model (default: minilm)"),
    ConfigKey("index_url", "a Chroma server that keeps the vectors"),
    ConfigKey("llm.url", "an OpenAI-compatible endpoint that writes answers"),
    ConfigKey("llm.model", "the model name for llm.url"),
    ConfigKey("llm.gguf", "a local GGUF model file that writes answers"),
    ConfigKey("app.listen", "where the app's node listens (remembered on its first run)"),
)
KEY_NAMES = tuple(k.name for k in KEYS)


def config_key(name: str) -> ConfigKey:
    for key in KEYS:
        if key.name == name:
            return key
    raise CommonsError(
        f"there is no setting {name!r}; the settings are: {', '.join(KEY_NAMES)}"
    )


def config_path(home: Path) -> Path:
    return home / CONFIG_FILE


def flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"llm": {"url": x}} -> {"llm.url": x}."""
    out: dict[str, Any] = {}
    for k, v in table.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def set_value(home: Path, name: str, value: str | None) -> Any:
    """Set (or with None or "", remove) one key in the home's config file; returns the
    value as stored. Other keys, known or not, are kept."""
    key = config_key(name)
    path = config_path(home)
    table = read_config(path)
    section, _, leaf = key.name.rpartition(".")
    target = table
    if section:
        sub = table.setdefault(section, {})
        if not isinstance(sub, dict):
            raise CommonsError(f"{path}: {section} must be a table; fix or remove the file")
        target = sub
    stored: Any
    if value is None or value.strip() == "":
        target.pop(leaf, None)
        stored = None
    elif key.is_list:
        stored = [v.strip() for v in value.split(",") if v.strip()]
        target[leaf] = stored
    else:
        stored = value.strip()
        target[leaf] = stored
    if section and not target:
        table.pop(section, None)
    write_config(path, table)
    return stored


def write_config(path: Path, table: dict[str, Any]) -> None:
    """Write `table` as TOML, atomically (a crash leaves the old file whole)."""
    text = dumps(table)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def dumps(table: dict[str, Any]) -> str:
    plain = [(k, v) for k, v in table.items() if not isinstance(v, dict)]
    tables = [(k, v) for k, v in table.items() if isinstance(v, dict)]
    lines = [f"{_key(k)} = {_value(v)}" for k, v in plain]
    for name, sub in tables:
        lines += ["", f"[{_key(name)}]"]
        for k, v in sub.items():
            if isinstance(v, dict):
                raise CommonsError(f"config table {name}.{k} is nested too deeply to rewrite")
            lines.append(f"{_key(k)} = {_value(v)}")
    return "\n".join(lines).lstrip("\n") + "\n"


def _key(k: str) -> str:
    bare = k and all(c.isalnum() or c in "-_" for c in k) and k.isascii()
    return k if bare else json.dumps(k)


def _value(v: Any) -> str:
    # A JSON string with ensure_ascii is a valid TOML basic string.
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise CommonsError(f"cannot write {v!r} in the config file")
