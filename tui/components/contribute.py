"""Contribute: a file or pasted text, its title, tags and licence, a chunk preview, publish."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.message import Message
from textual.suggester import Suggester
from textual.widgets import Button, Footer, Input, OptionList, ProgressBar, Static, TextArea
from textual.widgets.option_list import Option

from commons.ingest import Extracted
from commons.model.errors import IngestError
from tui.backend import Backend, Published
from tui.components.base import CommonsScreen
from tui.components.file_picker import FilePickerScreen
from tui.components.navbar import NavBar
from tui.core import complete_path, excerpt, parse_tags, short_id


class PathSuggester(Suggester):
    """Completes file paths as you type; right arrow accepts."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        return await asyncio.to_thread(complete_path, value)


class ContributeScreen(CommonsScreen):
    CSS_PATH = Path(__file__).with_suffix(".tcss")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+o", "pick_file", "Pick file"),
        Binding("ctrl+r", "preview", "Preview"),
        Binding("ctrl+s", "publish", "Publish"),
    ]

    class Previewed(Message):
        def __init__(self, extracted: Extracted, chunks: list[str]) -> None:
            super().__init__()
            self.extracted = extracted
            self.chunks = chunks

    class Progress(Message):
        def __init__(self, done: int, total: int, label: str) -> None:
            super().__init__()
            self.done = done
            self.total = total
            self.label = label

    class Done(Message):
        """Publishing ended: with the result, or None when it failed (already reported)."""

        def __init__(self, published: Published | None) -> None:
            super().__init__()
            self.published = published

    def __init__(self, backend: Backend) -> None:
        super().__init__(backend, id="contribute")
        self.busy = False

    def compose(self) -> ComposeResult:
        yield NavBar("contribute")
        with Horizontal(id="source"):
            yield Input(
                placeholder="file: .md .txt .html .pdf (→ completes)",
                suggester=PathSuggester(),
                id="path",
                compact=True,
            )
            yield Button("Browse… ^o", id="browse", compact=True)
        paste = TextArea(id="paste", soft_wrap=True, show_line_numbers=False)
        paste.border_title = "…or paste text"
        yield paste
        with Horizontal(id="meta"):
            yield Input(placeholder="title (default: first heading)", id="title", compact=True)
            yield Input(placeholder="tags: a, b", id="tags", compact=True)
            yield Input("CC-BY-4.0", placeholder="licence", id="licence", compact=True)
        with Horizontal(id="actions"):
            yield Button("Preview ^r", id="preview", compact=True)
            yield Button("Sign & publish ^s", id="publish", variant="primary", compact=True)
            yield ProgressBar(total=1, show_eta=False, id="progress")
            yield Static("", id="step")
        chunks = OptionList(id="chunks")
        chunks.border_title = "Passages"
        yield chunks
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#path", Input).focus()

    # -- reading the form -----------------------------------------------------

    def source(self) -> tuple[str, str] | None:
        """('file', path) or ('text', pasted), or None after telling the user what is missing."""
        path = self.query_one("#path", Input).value.strip()
        if path:
            return "file", path
        text = self.query_one("#paste", TextArea).text
        if text.strip():
            return "text", text
        self.notify("Give a file path (ctrl+o to pick one) or paste some text.",
                    title="Nothing to contribute", severity="warning")
        return None

    def extract(self, source: tuple[str, str]) -> Extracted:
        kind, value = source
        if kind == "file":
            return self.backend.read_file(value)
        return self.backend.read_pasted(value)

    # -- actions --------------------------------------------------------------

    def action_pick_file(self) -> None:
        typed = Path(self.query_one("#path", Input).value.strip() or ".").expanduser()
        start = typed if typed.is_dir() else typed.parent

        def chosen(path: Path | None) -> None:
            if path is not None:
                box = self.query_one("#path", Input)
                box.value = str(path)
                box.focus()
                self.action_preview()

        self.app.push_screen(FilePickerScreen(start if start.is_dir() else Path.cwd()), chosen)

    @on(Button.Pressed, "#browse")
    def browse_pressed(self) -> None:
        self.action_pick_file()

    @on(Button.Pressed, "#preview")
    def action_preview(self) -> None:
        source = self.source()
        if source is not None:
            self.preview(source)

    @on(Input.Submitted, "#path")
    def path_submitted(self) -> None:
        self.action_preview()

    @on(Button.Pressed, "#publish")
    def action_publish(self) -> None:
        if self.busy:
            return
        source = self.source()
        if source is None:
            return
        self.busy = True
        self.query_one("#publish", Button).disabled = True
        self.publish(
            source,
            title=self.query_one("#title", Input).value.strip() or None,
            tags=parse_tags(self.query_one("#tags", Input).value),
            licence=self.query_one("#licence", Input).value.strip() or "CC-BY-4.0",
        )

    # -- workers --------------------------------------------------------------

    @work(thread=True, exclusive=True, group="contribute-preview")
    def preview(self, source: tuple[str, str]) -> None:
        with self.reporting("Reading"):
            extracted = self.extract(source)
            self.post_message(self.Previewed(extracted, self.backend.chunk_preview(extracted)))

    @work(thread=True, exclusive=True, group="contribute-publish")
    def publish(
        self, source: tuple[str, str], *, title: str | None, tags: list[str], licence: str
    ) -> None:
        published: Published | None = None
        with self.reporting("Publishing"):
            self.post_message(self.Progress(0, 1, "reading"))
            extracted = self.extract(source)
            chunks = self.backend.chunk_preview(extracted)
            if not chunks:
                raise IngestError("the text has no passages to index; is it empty?")
            self.post_message(self.Previewed(extracted, chunks))
            # Steps: read, sign and store, then one per passage embedded.
            total = len(chunks) + 2
            embedded = 0
            self.post_message(self.Progress(1, total, "signing and storing"))

            def on_chunks(n: int) -> None:
                nonlocal embedded
                embedded = min(embedded + n, len(chunks))
                self.post_message(self.Progress(
                    1 + embedded, total, f"indexing: {embedded} of {len(chunks)} passages"
                ))

            published = self.backend.publish(
                extracted, title=title, tags=tags, licence=licence, on_chunks=on_chunks
            )
            self.post_message(self.Progress(total, total, "published"))
        self.post_message(self.Done(published))

    # -- results --------------------------------------------------------------

    def on_contribute_screen_previewed(self, message: Previewed) -> None:
        self.query_one("#title", Input).placeholder = f"title: {message.extracted.title}"
        chunks = self.query_one("#chunks", OptionList)
        chunks.clear_options()
        width = max(self.app.size.width - 8, 30)
        for n, chunk in enumerate(message.chunks, start=1):
            prompt = Text(f"{n:>3} ", style="bold")
            prompt.append(f"{len(chunk)} chars  ", style="dim")
            prompt.append(excerpt(chunk, width - 18))
            chunks.add_option(Option(prompt))
        chunks.border_title = f"Passages: {len(message.chunks)}"

    def on_contribute_screen_progress(self, message: Progress) -> None:
        self.query_one("#progress", ProgressBar).update(total=message.total, progress=message.done)
        self.query_one("#step", Static).update(message.label)

    def on_contribute_screen_done(self, message: Done) -> None:
        self.busy = False
        self.query_one("#publish", Button).disabled = False
        published = message.published
        if published is None:
            self.query_one("#progress", ProgressBar).update(progress=0)
            self.query_one("#step", Static).update("not published")
            return
        row = published.row
        if published.status == "duplicate":
            self.notify(f"You already published this text as {row.title} ({short_id(row.id)}).",
                        title="Already in the commons", severity="warning")
        else:
            self.notify(
                f"{row.title} ({short_id(row.id)}) is signed and in the Library; it spreads to"
                " your peers from here.",
                title="Published",
            )
        for box in ("#path", "#title", "#tags"):
            self.query_one(box, Input).value = ""
        self.query_one("#paste", TextArea).text = ""
