"""Ask: a question box, the answer with numbered citations, and the questions asked so far."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Footer, Input, Markdown, OptionList, Static
from textual.widgets.option_list import Option
from textual.worker import get_current_worker

from tui.backend import Backend
from tui.components.base import CommonsScreen
from tui.components.document import DocumentScreen
from tui.components.navbar import NavBar
from tui.core import AnswerView, CitationView, History, clip, excerpt

WELCOME = (
    "Ask anything. The answer is built from the documents on this machine, with no"
    " network, and every sentence cites where it came from: press a citation's number"
    " (or enter on it) to read it in its document."
)


class AskScreen(CommonsScreen):
    CSS_PATH = Path(__file__).with_suffix(".tcss")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("1", "cite(1)", "Open citation", key_display="1…9"),
        *(Binding(str(n), f"cite({n})", f"Open [{n}]", show=False) for n in range(2, 10)),
        Binding("up", "history(1)", "Earlier question", show=False),
        Binding("down", "history(-1)", "Later question", show=False),
        Binding("escape", "focus_question", "Question"),
        Binding("ctrl+l", "clear_history", "Clear history"),
    ]

    class Answered(Message):
        """The answer to a question, or None when asking failed (already reported)."""

        def __init__(self, answer: AnswerView | None) -> None:
            super().__init__()
            self.answer = answer

    def __init__(self, backend: Backend) -> None:
        super().__init__(backend, id="ask")
        self.history = History()
        self.current: AnswerView | None = None
        self._recall = -1  # position in the history while paging with up/down

    def compose(self) -> ComposeResult:
        yield NavBar("ask")
        yield Input(placeholder="ask the commons a question, then enter", id="question")
        with Horizontal(id="ask-main"):
            with Vertical(id="answer-pane"):
                with VerticalScroll(id="answer-scroll"):
                    yield Markdown(WELCOME, id="answer")
                yield OptionList(id="citations")
            with Vertical(id="history-pane"):
                yield Static("History · ^l clears", classes="pane-title")
                yield OptionList(id="history")
        yield Footer()

    class Recalled(Message):
        """Questions asked in earlier sessions, read from the home."""

        def __init__(self, answers: list[AnswerView]) -> None:
            super().__init__()
            self.answers = answers

    def on_mount(self) -> None:
        self.query_one("#citations", OptionList).display = False
        self.query_one("#question", Input).focus()
        self.recall()

    @work(thread=True, group="ask-history")
    def recall(self) -> None:
        with self.reporting("Reading your earlier questions"):
            self.post_message(self.Recalled(self.backend.asked()))

    def on_ask_screen_recalled(self, message: Recalled) -> None:
        asked_now = [a.question for a in self.history.answers]
        earlier = [a for a in message.answers if a.question not in asked_now]
        self.history.answers = self.history.answers + earlier
        self.show_history()

    def action_clear_history(self) -> None:
        self.backend.clear_asked()
        self.history.answers = []
        self._recall = -1
        self.show_history()
        self.notify("Your earlier questions are forgotten on this machine.",
                    title="History cleared")

    # -- asking ---------------------------------------------------------------

    @on(Input.Submitted, "#question")
    def submitted(self, event: Input.Submitted) -> None:
        question = " ".join(event.value.split())
        if not question:
            self.notify("Type a question first.", severity="warning")
            return
        self._recall = -1
        self.query_one("#answer-scroll").loading = True
        self.query_one("#question", Input).border_subtitle = "searching…"
        self.ask(question)

    @work(thread=True, exclusive=True, group="ask")
    def ask(self, question: str) -> None:
        answer: AnswerView | None = None
        with self.reporting("Asking"):
            answer = self.backend.ask(question)
        if not get_current_worker().is_cancelled:  # a newer question replaced this one
            self.post_message(self.Answered(answer))

    async def on_ask_screen_answered(self, message: Answered) -> None:
        self.query_one("#answer-scroll").loading = False
        answer = message.answer
        box = self.query_one("#question", Input)
        if answer is None:
            box.border_subtitle = "not answered"
            return
        count = len(answer.citations)
        box.border_subtitle = (
            "no answer" if answer.abstained else f"{count} source{'s' if count != 1 else ''}"
        )
        self.history.add(answer)
        self.show_history()
        await self.show(answer)
        if answer.citations:
            self.query_one("#citations", OptionList).focus()

    async def show(self, answer: AnswerView) -> None:
        self.current = answer
        await self.query_one("#answer", Markdown).update(answer.text)
        self.query_one("#answer-scroll", VerticalScroll).scroll_home(animate=False)
        citations = self.query_one("#citations", OptionList)
        citations.clear_options()
        width = max(self.query_one("#answer-pane").size.width - 4, 30)
        citations.add_options(
            Option(self.citation_prompt(c, width), id=str(c.n)) for c in answer.citations
        )
        citations.display = bool(answer.citations)
        if answer.citations:
            citations.highlighted = 0

    @staticmethod
    def citation_prompt(c: CitationView, width: int) -> Text:
        text = Text(clip(c.label, width), style="bold")
        text.append("\n" + excerpt(c.passage, width), style="dim")
        return text

    def show_history(self) -> None:
        history = self.query_one("#history", OptionList)
        history.clear_options()
        history.add_options(
            Option(a.question, id=str(i)) for i, a in enumerate(self.history.answers)
        )

    # -- choosing -------------------------------------------------------------

    @on(OptionList.OptionSelected, "#citations")
    def citation_selected(self, event: OptionList.OptionSelected) -> None:
        self.action_cite(int(event.option.id or 0))

    @on(OptionList.OptionSelected, "#history")
    async def history_selected(self, event: OptionList.OptionSelected) -> None:
        answer = self.history.answers[int(event.option.id or 0)]
        self.query_one("#question", Input).value = answer.question
        await self.show(answer)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        typing = self.focused is self.query_one("#question", Input)
        if action == "cite":
            return not typing
        if action == "history":
            return typing
        return True

    def action_cite(self, n: int) -> None:
        citation = self.current.citation(n) if self.current else None
        if citation is None:
            return
        self.app.push_screen(
            DocumentScreen(
                self.backend,
                citation.id,
                mode="ask",
                span=citation.span,
                passage=citation.passage,
                label=f"[{n}] cited passage",
            )
        )

    def action_history(self, step: int) -> None:
        answers = self.history.answers
        if not answers:
            return
        self._recall = min(max(self._recall + step, -1), len(answers) - 1)
        box = self.query_one("#question", Input)
        box.value = answers[self._recall].question if self._recall >= 0 else ""
        box.cursor_position = len(box.value)

    def action_focus_question(self) -> None:
        self.query_one("#question", Input).focus()
