"""A modal directory tree to pick the file to contribute."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DirectoryTree, Label

from commons.ingest import SUFFIXES

# Formats the ingest may learn later are shown too; a wrong pick gets a clear error.
SHOWN = set(SUFFIXES) | {".html", ".htm", ".pdf"}


class DocumentTree(DirectoryTree):
    """Directories and the files the commons can read; no hidden entries."""

    def filter_paths(self, paths: list[Path]) -> list[Path]:  # type: ignore[override]
        return [
            p for p in paths
            if not p.name.startswith(".") and (p.is_dir() or p.suffix.lower() in SHOWN)
        ]


class FilePickerScreen(ModalScreen[Path | None]):
    CSS_PATH = Path(__file__).with_suffix(".tcss")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("backspace", "up", "Parent folder"),
    ]

    def __init__(self, start: Path) -> None:
        super().__init__()
        self.start = start.resolve()

    def compose(self) -> ComposeResult:
        with Vertical(id="picker"):
            yield Label("Pick a file · enter opens · backspace goes up · escape cancels",
                        id="picker-help")
            yield DocumentTree(self.start, id="tree")

    def on_mount(self) -> None:
        self.query_one(DocumentTree).focus()

    @on(DirectoryTree.FileSelected)
    def chosen(self, event: DirectoryTree.FileSelected) -> None:
        self.dismiss(event.path)

    def action_up(self) -> None:
        tree = self.query_one(DocumentTree)
        tree.path = Path(tree.path).resolve().parent

    def action_cancel(self) -> None:
        self.dismiss(None)
