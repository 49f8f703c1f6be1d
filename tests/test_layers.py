"""The layers hold: tui -> sync -> commons, never the other way, checked on the source.

Every module's syntax tree is walked: imports at any depth (lazy ones too),
`import_module(...)`/`__import__(...)` calls, and string constants that name a
module or a "module:function" handler. A reference from a layer to one above it,
or from the core to aiohttp or textual, fails the test.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RANK = {"commons": 0, "sync": 1, "tui": 2}
# Libraries a layer must not use: the core has no HTTP server and no UI; sync has no UI.
FORBIDDEN = {"commons": {"aiohttp", "textual"}, "sync": {"textual"}, "tui": set()}
MODULE_STRING = re.compile(r"^(commons|sync|tui)(\.[A-Za-z_]\w*)*(:[A-Za-z_]\w*)?$")


def referenced_modules(source: str) -> list[tuple[int, str]]:
    """(line, dotted name) of every module the source imports or names."""
    tree = ast.parse(source)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
            # `from sync import node` names sync.node
            found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("import_module", "__import__") and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    found.append((node.lineno, arg.value))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value.strip()
            if MODULE_STRING.match(text) and ("." in text or ":" in text):
                found.append((node.lineno, text.split(":")[0]))
    return found


def violations(layer: str, source: str) -> list[str]:
    out = []
    for line, name in referenced_modules(source):
        top = name.split(".")[0]
        if top in RANK and RANK[top] > RANK[layer]:
            out.append(f"line {line}: {layer} names {name}, a layer above it")
        if top in FORBIDDEN[layer]:
            out.append(f"line {line}: {layer} uses {top}")
    return out


def modules() -> list[Path]:
    return sorted(p for layer in RANK for p in (ROOT / layer).rglob("*.py"))


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_names_a_layer_above_it(path: Path) -> None:
    layer = path.relative_to(ROOT).parts[0]
    assert violations(layer, path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(
    "layer, source",
    [
        ("commons", "import sync\n"),
        ("commons", "def f():\n    from sync.http import node\n"),
        ("commons", "HANDLER = 'tui.run:main_command'\n"),
        ("commons", "import importlib\nimportlib.import_module('tui.app')\n"),
        ("commons", "import aiohttp\n"),
        ("commons", "from textual.app import App\n"),
        ("sync", "from tui.backend import Backend\n"),
        ("sync", "x = {'handler': 'tui.main:main'}\n"),
        ("sync", "import textual\n"),
    ],
)
def test_the_checker_catches_an_upward_reference(layer: str, source: str) -> None:
    assert violations(layer, source)


@pytest.mark.parametrize(
    "layer, source",
    [
        ("sync", "from commons.model.objects import parse\n"),
        ("tui", "import sync.cli\nH = 'sync.cli:serve'\n"),
        ("commons", "H = 'commons.cli.documents:init'\nDOC = 'see sync.md'\n"),
    ],
)
def test_downward_and_same_layer_references_are_allowed(layer: str, source: str) -> None:
    assert violations(layer, source) == []


def test_every_layer_has_modules_to_check() -> None:
    layers = {p.relative_to(ROOT).parts[0] for p in modules()}
    assert layers == set(RANK)


def environment_reads(source: str) -> list[int]:
    """Lines that read the process environment: `os.environ[...]`, its `.get`,
    `.setdefault`, `in os.environ`, `os.getenv`, `environ`/`getenv` imported from os,
    and `getpass.getuser()` (which reads $USER)."""
    tree = ast.parse(source)
    lines = []
    names = {"environ"}  # names bound to os.environ
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "os":
            for alias in node.names:
                if alias.name in ("environ", "getenv", "environb", "getenvb"):
                    lines.append(node.lineno)

    def is_environ(expr: ast.expr) -> bool:
        return (isinstance(expr, ast.Attribute) and expr.attr in names) or (
            isinstance(expr, ast.Name) and expr.id in names
        )

    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Attribute) and f.attr in ("getenv", "getuser"):
                lines.append(node.lineno)
            if isinstance(f, ast.Attribute) and is_environ(f.value) and f.attr in (
                "get", "copy", "items", "keys", "values", "setdefault", "__getitem__"
            ):
                lines.append(node.lineno)
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
            if is_environ(node.value):
                lines.append(node.lineno)
        elif isinstance(node, ast.Compare) and any(is_environ(c) for c in node.comparators):
            lines.append(node.lineno)
    return sorted(set(lines))


# The entry point hands the environment to the settings (which read the mapping they
# are given) and the root asks for the login name; nothing else reads it.
ENVIRONMENT_READERS = {ROOT / "tui" / p for p in ("main.py", "root.py")} | {
    ROOT / "commons" / "settings.py"
}


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_only_the_entry_point_reads_the_environment(path: Path) -> None:
    if path in ENVIRONMENT_READERS:
        return
    assert environment_reads(path.read_text(encoding="utf-8")) == []


def test_the_environment_check_catches_a_read() -> None:
    assert environment_reads("import os\nkey = os.environ.get('X')\n") == [2]
    assert environment_reads("import os\nkey = os.environ['X']\n") == [2]
    assert environment_reads("import os\nkey = os.getenv('X')\n") == [2]
    assert environment_reads("import os\nos.environ['X'] = '1'\n") == []
    assert environment_reads("import os\nos.environ.setdefault('X', '1')\n") == [2]
    assert environment_reads("import os\nif 'X' in os.environ:\n    pass\n") == [2]
    assert environment_reads("from os import environ\nx = environ.get('X')\n") == [1, 2]
    assert environment_reads("from os import getenv\nx = getenv('X')\n") == [1]
    assert environment_reads("import getpass\nx = getpass.getuser()\n") == [2]
