"""Your display name: asked on the first run (skippable), changed from Identity."""

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
from tui.backend import Backend, Whoami


class NameScreen(ModalScreen[Whoami | None]):
    """Dismissed with who you are after the new name is signed, or None if skipped."""

    CSS_PATH = Path(__file__).with_suffix(".tcss")
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "skip", "Skip")]

    class Done(Message):
        def __init__(self, who: Whoami | None, error: str | None) -> None:
            super().__init__()
            self.who = who
            self.error = error

    def __init__(self, backend: Backend, *, first_run: bool = False, current: str = "") -> None:
        super().__init__()
        self.backend = backend
        self.first_run = first_run
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            if self.first_run:
                yield Label("[b]Welcome to the commons.[/b] What name should others see?")
            else:
                yield Label("[b]Your display name[/b]")
            yield Label(
                "It is signed with your key and shown beside what you publish, on every"
                " peer. You can change it later (F6 Identity, n).",
                classes="dim",
            )
            yield Input(self.current, placeholder="e.g. Ana Lima, or your library's name",
                        id="name")
            with Horizontal(id="buttons"):
                yield Button("Save", variant="primary", id="save")
                yield Button("Skip" if self.first_run else "Cancel", id="skip")

    def on_mount(self) -> None:
        self.query_one("#name", Input).focus()

    @on(Input.Submitted)
    @on(Button.Pressed, "#save")
    def save(self) -> None:
        name = " ".join(self.query_one("#name", Input).value.split())
        if not name:
            self.notify("Type a name, or press escape to skip.", severity="warning")
            return
        self.query_one("#save", Button).disabled = True
        self.sign_name(name)

    @on(Button.Pressed, "#skip")
    def action_skip(self) -> None:
        self.dismiss(None)

    @work(thread=True, exclusive=True)
    def sign_name(self, name: str) -> None:
        try:
            who = self.backend.set_name(name)
        except CommonsError as exc:
            self.post_message(self.Done(None, str(exc)))
            return
        self.post_message(self.Done(who, None))

    def on_name_screen_done(self, message: Done) -> None:
        if message.error or message.who is None:
            self.notify(message.error or "?", title="Name not changed", severity="error")
            self.query_one("#save", Button).disabled = False
            return
        self.notify(f"Others now see you as {message.who.name}.", title="Name signed")
        self.dismiss(message.who)
