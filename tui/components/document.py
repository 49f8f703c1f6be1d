"""One document, rendered, with its provenance beside it; optionally at a cited passage."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Footer, Markdown, Static

from tui.backend import Backend, DocumentView
from tui.components.base import CommonsScreen
from tui.components.navbar import NavBar
from tui.core import Badge, locate_passage, provenance, segments


class DocumentScreen(CommonsScreen):
    """Pushed over the Library or Ask; escape goes back."""

    CSS_PATH = Path(__file__).with_suffix(".tcss")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "back", "Back"),
        Binding("c", "to_cited", "Cited passage", show=False),
        Binding("p", "toggle_provenance", "Provenance"),
    ]

    class Loaded(Message):
        def __init__(self, view: DocumentView, badge: Badge, reason: str | None) -> None:
            super().__init__()
            self.view = view
            self.badge = badge
            self.reason = reason

    def __init__(
        self,
        backend: Backend,
        doc_id: str,
        *,
        mode: str,
        span: tuple[int, int] | None = None,
        passage: str | None = None,
        label: str | None = None,
    ) -> None:
        super().__init__(backend)
        self.doc_id = doc_id
        self.mode = mode
        self.span = span
        self.passage = passage
        self.label = label or "cited passage"
        self.cited: Widget | None = None

    def compose(self) -> ComposeResult:
        yield NavBar(self.mode)
        with Horizontal(id="reader"):
            yield VerticalScroll(Static("opening…", classes="segment"), id="body")
            yield Static("", id="provenance")
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    @work(thread=True, exclusive=True)
    def load(self) -> None:
        with self.reporting("Opening the document"):
            view = self.backend.document(self.doc_id)
            badge, reason = self.backend.verify(self.doc_id)
            self.post_message(self.Loaded(view, badge, reason))

    async def on_document_screen_loaded(self, message: Loaded) -> None:
        view = message.view
        self.sub_title = view.row.title
        self.query_one("#provenance", Static).update(self.provenance_text(message))
        span = self.span
        if span is None and self.passage:
            span = locate_passage(view.body, self.passage)
        elif span is not None and self.passage and not _span_holds(view.body, span, self.passage):
            # Offsets from an older index can drift; trust the passage's words.
            span = locate_passage(view.body, self.passage) or span
        if self.passage and span is None:
            self.notify("The cited passage is no longer in this version of the document.",
                        severity="warning")
        body = self.query_one("#body", VerticalScroll)
        await body.remove_children()
        markdown = view.row.media_type == "text/markdown"
        for segment in segments(view.body, span):
            widget: Widget = (
                Markdown(classes="segment") if markdown
                else Static(Text(_pages(segment.text, "\n\n· · ·\n\n")), classes="segment")
            )
            if segment.cited:
                widget.add_class("cited")
                widget.border_title = self.label
                self.cited = widget
            await body.mount(widget)
            if isinstance(widget, Markdown):
                # Parsed off the UI thread; awaited so the passage's place is known.
                await widget.update(_pages(segment.text, "\n\n---\n\n"))
        if self.cited is not None:
            self.call_after_refresh(self.action_to_cited)

    def provenance_text(self, message: Loaded) -> Text:
        row = message.view.row
        text = Text()
        style = {"✓": "bold green", "✗": "bold red"}.get(message.badge.value, "")
        for label, value in provenance(row, message.badge, reason=message.reason):
            text.append(f"{label}\n", style="dim")
            text.append(f"{value}\n", style=style if label == "signature" else "")
        return text

    def action_to_cited(self) -> None:
        if self.cited is not None:
            self.query_one("#body", VerticalScroll).scroll_to_widget(
                self.cited, animate=False, top=True
            )

    def action_toggle_provenance(self) -> None:
        self.query_one("#provenance").toggle_class("hidden")

    def action_back(self) -> None:
        self.dismiss()


def _pages(text: str, rule: str) -> str:
    """PDF page breaks (form feeds in the body) as a visible rule."""
    return text.replace("\f", rule)


def _span_holds(body: str, span: tuple[int, int], passage: str) -> bool:
    words = passage.split()[:3]
    return bool(words) and words[0] in body[span[0] : span[1]]
