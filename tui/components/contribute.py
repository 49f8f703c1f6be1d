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
from textual.widgets import (
    Button,
    Footer,
    Input,
    Label,
    OptionList,
    ProgressBar,
    Select,
    Static,
    TextArea,
)
from textual.widgets.option_list import Option

from commons.ingest import Extracted
from commons.model.errors import IngestError
from tui.backend import Backend, Published
from tui.components.base import CommonsScreen
from tui.components.file_picker import FilePickerScreen
from tui.components.navbar import NavBar
from tui.core import clip, complete_path, excerpt, parse_tags, short_id
from tui.form import LICENCE_NOT_STATED, fmt_size, licence_options, looks_like_path

REMINDER = (
    "Sign only your own work, or work whose licence lets you share it: your key vouches"
    " for it on every peer."
)


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
        self.previewed: Extracted | None = None
        self.passages = 0

    def compose(self) -> ComposeResult:
        yield NavBar("contribute")
        with Horizontal(id="source", classes="field"):
            yield Label("File", classes="label")
            yield Input(
                placeholder=".md .txt .html .pdf (→ completes, enter previews)",
                suggester=PathSuggester(),
                id="path",
                compact=True,
            )
            browse = Button("Browse… ^o", id="browse", compact=True)
            browse.can_focus = False  # tab goes from the path to the text; ctrl+o browses
            yield browse
        paste = TextArea(id="paste", soft_wrap=True, show_line_numbers=False)
        paste.border_title = "…or paste text"
        yield paste
        with Horizontal(classes="field"):
            yield Label("Title", classes="label")
            yield Input(placeholder="default: the first heading", id="title", compact=True)
        with Horizontal(classes="field"):
            yield Label("Tags", classes="label")
            yield Input(placeholder="words, e.g. water, how-to", id="tags", compact=True)
            yield Label("Licence", classes="label", id="licence-label")
            yield Select[str](
                licence_options(self.backend.default_licence),
                value=self.backend.default_licence or LICENCE_NOT_STATED,
                allow_blank=False,
                id="licence",
                compact=True,
            )
        yield Static(REMINDER, id="reminder")
        yield Static("", id="signed")
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
        self.show_signed()

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

    def form(self) -> tuple[str | None, list[str], str | None]:
        """(title, tags, licence) as typed; licence None when not stated."""
        title = self.query_one("#title", Input).value.strip() or None
        licence = self.query_one("#licence", Select).value
        chosen = licence if isinstance(licence, str) and licence != LICENCE_NOT_STATED else None
        return title, parse_tags(self.query_one("#tags", Input).value), chosen

    def title_is_a_path(self) -> bool:
        """A path typed into the title box (the file box is for it) is not a title."""
        title = self.query_one("#title", Input).value.strip()
        return bool(title) and looks_like_path(title)

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

    @on(Input.Changed, "#title")
    @on(Input.Changed, "#tags")
    @on(Select.Changed, "#licence")
    def form_changed(self) -> None:
        self.show_signed()

    def show_signed(self) -> None:
        """What Ctrl+S will sign, exactly, as the form stands."""
        title, tags, licence = self.form()
        extracted = self.previewed
        text = Text("Will sign: ", style="bold")
        if extracted is None:
            text.append("nothing yet · give a file or paste text, then ^r to preview",
                        style="dim")
        else:
            size = len(extracted.body.encode("utf-8"))
            text.append(clip(title or extracted.title, 60), style="bold")
            text.append(f"  · tags: {', '.join(tags) or 'none'}")
            text.append(f"  · licence: {licence or LICENCE_NOT_STATED}")
            unit = "passage" if self.passages == 1 else "passages"
            text.append(f"  · {fmt_size(size)}, {self.passages} {unit}")
        self.query_one("#signed", Static).update(text)

    @on(Button.Pressed, "#publish")
    def action_publish(self) -> None:
        if self.busy:
            return
        source = self.source()
        if source is None:
            return
        if self.title_is_a_path():
            self.notify("The title looks like a file path; put the path in File and give the"
                        " title in words (or leave it empty for the first heading).",
                        title="Not published", severity="warning")
            self.query_one("#title", Input).focus()
            return
        title, tags, licence = self.form()
        self.busy = True
        self.query_one("#publish", Button).disabled = True
        self.publish(source, title=title, tags=tags, licence=licence)

    # -- workers --------------------------------------------------------------

    @work(thread=True, exclusive=True, group="contribute-preview")
    def preview(self, source: tuple[str, str]) -> None:
        with self.reporting("Reading"):
            extracted = self.extract(source)
            self.post_message(self.Previewed(extracted, self.backend.chunk_preview(extracted)))

    @work(thread=True, exclusive=True, group="contribute-publish")
    def publish(
        self, source: tuple[str, str], *, title: str | None, tags: list[str],
        licence: str | None,
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
        self.previewed = message.extracted
        self.passages = len(message.chunks)
        self.query_one("#title", Input).placeholder = f"default: {message.extracted.title}"
        if message.extracted.note:
            self.notify(message.extracted.note, title="Read with a guessed encoding")
        self.show_signed()
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
        self.query_one("#step", Static).update(
            f"published {clip(published.row.title, 30)} · next: a file or text"
        )
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
        self.reset_form()

    def reset_form(self) -> None:
        """A fresh form for the next contribution, with focus where it starts."""
        for box in ("#path", "#title", "#tags"):
            self.query_one(box, Input).value = ""
        self.query_one("#title", Input).placeholder = "default: the first heading"
        self.query_one("#paste", TextArea).text = ""
        self.query_one("#chunks", OptionList).clear_options()
        self.query_one("#chunks", OptionList).border_title = "Passages"
        self.query_one("#progress", ProgressBar).update(total=1, progress=0)
        self.previewed = None
        self.passages = 0
        self.show_signed()
        self.query_one("#path", Input).focus()
