"""Ask before retracting one of your documents, with an optional public reason."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label

from commons.model.errors import CommonsError
from tui.backend import Backend
from tui.core import DocRow, short_id


class RetractScreen(ModalScreen[bool]):
    """Dismissed with True once the retraction is signed and stored."""

    CSS_PATH = Path(__file__).with_suffix(".tcss")
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    class Done(Message):
        def __init__(self, error: str | None) -> None:
            super().__init__()
            self.error = error

    def __init__(self, backend: Backend, row: DocRow) -> None:
        super().__init__()
        self.backend = backend
        self.row = row

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(f"Retract [b]{self.row.title}[/b] ({short_id(self.row.id)})?")
            yield Label(
                "A signed retraction spreads to every peer and removes the document there."
                " This cannot be undone.",
                classes="dim",
            )
            yield Input(placeholder="reason (optional, public)", id="reason")
            with Horizontal(id="buttons"):
                yield Button("Retract", variant="error", id="retract")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#reason", Input).focus()

    @on(Input.Submitted)
    @on(Button.Pressed, "#retract")
    def confirm(self) -> None:
        self.query_one("#retract", Button).disabled = True
        self.retract(self.query_one("#reason", Input).value.strip() or None)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(False)

    @work(thread=True, exclusive=True)
    def retract(self, reason: str | None) -> None:
        try:
            self.backend.retract(self.row.id, reason)
        except CommonsError as exc:
            self.post_message(self.Done(str(exc)))
            return
        self.post_message(self.Done(None))

    def on_retract_screen_done(self, message: Done) -> None:
        if message.error:
            self.notify(message.error, title="Retraction failed", severity="error", timeout=8)
            self.query_one("#retract", Button).disabled = False
            return
        self.notify(f"Retracted {self.row.title}. Peers will drop it as the retraction spreads.")
        self.dismiss(True)
