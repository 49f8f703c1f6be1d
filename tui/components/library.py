"""The Library: every document, filtered as you type, each with its signature badge."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import DataTable, Footer, Input, Select, Static

from tui.backend import Backend
from tui.components.base import CommonsScreen
from tui.components.document import DocumentScreen
from tui.components.navbar import NavBar
from tui.components.retract import RetractScreen
from tui.core import (
    Badge,
    Column,
    DocRow,
    authors_of,
    filter_rows,
    library_cells,
    library_columns,
    newest_first,
    parse_filter,
    tags_of,
)

# Keys the table answers itself; every other printable key goes to the filter box.
_TABLE_KEYS = {"a", "t", "?"}


class LibraryScreen(CommonsScreen):
    CSS_PATH = Path(__file__).with_suffix(".tcss")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Open", priority=False),
        Binding("down", "move(1)", "Down", show=False),
        Binding("up", "move(-1)", "Up", show=False),
        Binding("pagedown", "move(10)", "Page down", show=False),
        Binding("pageup", "move(-10)", "Page up", show=False),
        Binding("escape", "clear_filter", "Clear filter"),
        Binding("a", "by_author", "By author"),
        Binding("t", "by_tag", "By tag"),
        Binding("delete", "retract", "Retract"),
    ]

    class Loaded(Message):
        def __init__(self, rows: list[DocRow]) -> None:
            super().__init__()
            self.rows = rows

    class TextFound(Message):
        """Ids of documents whose text holds `words` (a full-text search)."""

        def __init__(self, words: tuple[str, ...], ids: frozenset[str]) -> None:
            super().__init__()
            self.words = words
            self.ids = ids

    class Verified(Message):
        def __init__(self, badges: dict[str, tuple[Badge, str | None]]) -> None:
            super().__init__()
            self.badges = badges

    def __init__(self, backend: Backend) -> None:
        super().__init__(backend, id="library")
        self.rows: list[DocRow] = []
        self.shown: list[DocRow] = []
        self.badges: dict[str, tuple[Badge, str | None]] = {}
        self.columns: list[Column] = []
        self.loaded = False
        # Full-text matches of the filter's words, and the words they are for.
        self.text_hits: frozenset[str] = frozenset()
        self.text_words: tuple[str, ...] = ()

    def compose(self) -> ComposeResult:
        yield NavBar("library")
        with Horizontal(id="filters"):
            yield Input(placeholder='words in titles or text · author:X · tag:Y · "a phrase"',
                        id="filter", compact=True, select_on_focus=False)
            yield Select[str]([], prompt="any author", id="author", compact=True)
            yield Select[str]([], prompt="any tag", id="tag", compact=True)
        yield DataTable(id="documents", cursor_type="row", zebra_stripes=True)
        yield Static("loading the library…", id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.set_columns(self.app.size.width)
        self.query_one("#filter", Input).focus()
        self.load()

    def on_screen_resume(self) -> None:
        if self.loaded:
            self.load()

    def on_resize(self, event: events.Resize) -> None:
        if library_columns(event.size.width) != self.columns:
            self.set_columns(event.size.width)
            self.show_rows()

    # -- loading --------------------------------------------------------------

    @work(thread=True, exclusive=True, group="library-load")
    def load(self) -> None:
        with self.reporting("Loading the library"):
            self.post_message(self.Loaded(self.backend.documents()))

    @work(thread=True, exclusive=True, group="library-verify")
    def verify(self, ids: list[str]) -> None:
        with self.reporting("Checking signatures"):
            done: dict[str, tuple[Badge, str | None]] = {}
            for doc_id in ids:
                done[doc_id] = self.backend.verify(doc_id)
                if len(done) >= 25:  # a long library shows its badges as they come
                    self.post_message(self.Verified(done))
                    done = {}
            self.post_message(self.Verified(done))

    @work(thread=True, exclusive=True, group="library-search")
    def search_text(self, words: tuple[str, ...]) -> None:
        with self.reporting("Searching the text"):
            found = self.backend.search(" ".join(words))
            self.post_message(self.TextFound(words, frozenset(found)))

    def on_library_screen_text_found(self, message: TextFound) -> None:
        if message.words == self.text_words:
            self.text_hits = message.ids
            self.show_rows()

    def on_library_screen_loaded(self, message: Loaded) -> None:
        self.loaded = True
        self.rows = newest_first(message.rows)
        self.refresh_pickers()
        self.show_rows()
        todo = [row.id for row in self.rows if row.id not in self.badges]
        if todo:
            self.verify(todo)

    def on_library_screen_verified(self, message: Verified) -> None:
        self.badges.update(message.badges)
        table = self.query_one(DataTable)
        for doc_id, (badge, _) in message.badges.items():
            if doc_id in table.rows:
                table.update_cell(doc_id, "badge", badge.value)
        self.update_status()

    # -- showing --------------------------------------------------------------

    def set_columns(self, width: int) -> None:
        self.columns = library_columns(width)
        table = self.query_one(DataTable)
        table.clear(columns=True)
        for column in self.columns:
            table.add_column(column.label, width=column.width, key=column.key)

    def refresh_pickers(self) -> None:
        for select_id, options in (
            ("#author", authors_of(self.rows)),
            ("#tag", [(tag, tag) for tag in tags_of(self.rows)]),
        ):
            select = self.query_one(select_id, Select)
            keep = select.value
            with select.prevent(Select.Changed):
                select.set_options(options)
                if keep in {value for _, value in options}:
                    select.value = keep

    def current_filter(self) -> str:
        return self.query_one("#filter", Input).value

    def show_rows(self) -> None:
        author = self.query_one("#author", Select).value
        tag = self.query_one("#tag", Select).value
        f = parse_filter(
            self.current_filter(),
            author=author if isinstance(author, str) else None,
            tag=tag if isinstance(tag, str) else None,
        )
        if f.words != self.text_words:  # new words: search the text, show matches so far
            self.text_words = f.words
            self.text_hits = frozenset()
            if f.words:
                self.search_text(f.words)
        table = self.query_one(DataTable)
        keep = self.selected()
        self.shown = filter_rows(self.rows, f, self.text_hits)
        table.clear()
        for row in self.shown:
            badge = self.badges.get(row.id, (Badge.PENDING, None))[0]
            table.add_row(*library_cells(row, badge, self.columns), key=row.id)
        if keep is not None and keep.id in table.rows:
            table.move_cursor(row=table.get_row_index(keep.id))
        self.update_status()

    def update_status(self) -> None:
        shown, total = len(self.shown), len(self.rows)
        verified = sum(1 for b, _ in self.badges.values() if b is Badge.VERIFIED)
        invalid = [r for r in self.rows if self.badges.get(r.id, (None,))[0] is Badge.INVALID]
        text = f"{shown} of {total} documents · {verified} signatures verified · enter opens"
        if invalid:
            text += f" · [b red]{len(invalid)} do NOT verify[/]"
        if not total and self.loaded:
            text = "the commons is empty · F4 to contribute, F5 to find peers"
        elif not shown and total:
            text = f"nothing matches · escape clears the filter ({total} documents)"
        self.query_one("#status", Static).update(text)

    def selected(self) -> DocRow | None:
        table = self.query_one(DataTable)
        if not self.shown or table.cursor_row < 0 or table.cursor_row >= len(self.shown):
            return None
        return self.shown[table.cursor_row]

    # -- input ----------------------------------------------------------------

    @on(Input.Changed, "#filter")
    def filter_changed(self) -> None:
        self.show_rows()

    @on(Select.Changed)
    def picker_changed(self) -> None:
        self.show_rows()

    @on(Input.Submitted, "#filter")
    def filter_submitted(self) -> None:
        self.action_open()

    @on(DataTable.RowSelected)
    def row_selected(self) -> None:
        self.action_open()

    def on_key(self, event: events.Key) -> None:
        """Typing while the table has focus goes to the filter box."""
        if (
            isinstance(self.focused, DataTable)
            and event.is_printable
            and event.character
            and event.character not in _TABLE_KEYS
        ):
            box = self.query_one("#filter", Input)
            box.value += event.character
            box.cursor_position = len(box.value)
            box.focus()
            event.stop()
            event.prevent_default()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # These letters type into the filter box while it has focus.
        if action in ("by_author", "by_tag", "retract"):
            return isinstance(self.focused, DataTable)
        return True

    def on_descendant_focus(self) -> None:
        self.refresh_bindings()

    def action_move(self, delta: int) -> None:
        table = self.query_one(DataTable)
        if table.row_count:
            row = min(max(table.cursor_row + delta, 0), table.row_count - 1)
            table.move_cursor(row=row)

    def action_open(self) -> None:
        row = self.selected()
        if row is not None:
            self.app.push_screen(DocumentScreen(self.backend, row.id, mode="library"))

    def action_clear_filter(self) -> None:
        self.query_one("#filter", Input).value = ""
        self.query_one("#author", Select).clear()
        self.query_one("#tag", Select).clear()
        self.show_rows()

    def action_by_author(self) -> None:
        row = self.selected()
        if row is not None:
            self.query_one("#author", Select).value = row.author

    def action_by_tag(self) -> None:
        row = self.selected()
        if row is not None and row.tags:
            self.query_one("#tag", Select).value = row.tags[0]

    def action_retract(self) -> None:
        row = self.selected()
        if row is None:
            return
        if row.author != self.backend.public_key:
            self.notify(
                f"{row.author_label} wrote it; only its author can retract a document.",
                title="Not yours",
                severity="warning",
            )
            return
        self.app.push_screen(RetractScreen(self.backend, row))

