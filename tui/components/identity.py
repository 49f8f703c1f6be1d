"""Identity: your key, display name and home, and your own documents to retract."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DataTable, Footer, Static

from tui.backend import Backend, Whoami
from tui.components.base import CommonsScreen
from tui.components.document import DocumentScreen
from tui.components.name import NameScreen
from tui.components.navbar import NavBar
from tui.components.retract import RetractScreen
from tui.core import DocRow, clip, display_path, fmt_date, newest_first, short_id


class IdentityScreen(CommonsScreen):
    CSS_PATH = Path(__file__).with_suffix(".tcss")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Open", show=False),
        Binding("n", "rename", "Change name"),
        Binding("delete", "retract", "Retract"),
    ]

    class Loaded(Message):
        def __init__(self, who: Whoami, mine: list[DocRow]) -> None:
            super().__init__()
            self.who = who
            self.mine = mine

    def __init__(self, backend: Backend) -> None:
        super().__init__(backend, id="identity")
        self.mine: list[DocRow] = []
        self.who: Whoami | None = None

    def compose(self) -> ComposeResult:
        yield NavBar("identity")
        yield Static("", id="who")
        table: DataTable[str] = DataTable(id="mine", cursor_type="row", zebra_stripes=True)
        table.border_title = "Your documents · delete retracts"
        yield table
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#mine", DataTable)
        table.add_column("Title", key="title")
        table.add_column("Written", key="date", width=10)
        table.add_column("Id", key="id", width=12)
        table.focus()
        self.load()

    def on_screen_resume(self) -> None:
        self.load()

    @work(thread=True, exclusive=True)
    def load(self) -> None:
        with self.reporting("Reading your identity"):
            who = self.backend.whoami()
            self.post_message(self.Loaded(who, self.backend.documents(author=who.public_key)))

    def on_identity_screen_loaded(self, message: Loaded) -> None:
        who = message.who
        self.who = who
        text = Text()
        for label, value in (
            ("key", who.public_key),
            ("name", (who.name or "(not set)") + "  · n changes it"),
            ("home", display_path(who.home)),
            ("owner", f"the node at {who.through}" if who.through else "this app"),
        ):
            text.append(f"{label:>5}  ", style="dim")
            text.append(value + "\n", style="bold" if label == "key" else "")
        text.append(
            "Your key signs everything you publish; others recognise your work by it. Back up"
            f" {display_path(Path(who.home) / 'identity.key')} and keep it private.",
            style="dim italic",
        )
        self.query_one("#who", Static).update(text)
        self.mine = newest_first(message.mine)
        table = self.query_one("#mine", DataTable)
        table.clear()
        width = max(self.app.size.width - 30, 20)
        for row in self.mine:
            table.add_row(clip(row.title, width), fmt_date(row.created_at), short_id(row.id),
                          key=row.id)
        if not self.mine:
            table.add_row("you have not published anything yet · F4 to contribute", "", "")

    def selected(self) -> DocRow | None:
        table = self.query_one("#mine", DataTable)
        if not self.mine or not 0 <= table.cursor_row < len(self.mine):
            return None
        return self.mine[table.cursor_row]

    @on(DataTable.RowSelected)
    def action_open(self) -> None:
        row = self.selected()
        if row is not None:
            self.app.push_screen(DocumentScreen(self.backend, row.id, mode="identity"))

    def action_rename(self) -> None:
        def renamed(who: Whoami | None) -> None:
            if who is not None:
                self.load()

        current = (self.who.name or "") if self.who else ""
        self.app.push_screen(NameScreen(self.backend, current=current), renamed)

    def action_retract(self) -> None:
        row = self.selected()
        if row is not None:
            self.app.push_screen(RetractScreen(self.backend, row))
