"""Ask under Pilot: a seed question, its citations, the cited passage, abstention, history."""

from __future__ import annotations

from typing import Any

import pytest
from textual.containers import VerticalScroll
from textual.pilot import Pilot
from textual.widgets import Input, Markdown, OptionList
from tui_support import settle

from tui.app import CommonsApp
from tui.backend import Backend
from tui.components.ask import AskScreen
from tui.components.document import DocumentScreen
from tui.core import ABSTAIN_TEXT


async def ask(pilot: Pilot[Any], app: CommonsApp, question: str) -> AskScreen:
    screen = app.screen
    assert isinstance(screen, AskScreen)
    box = screen.query_one("#question", Input)
    box.focus()
    box.value = question
    await pilot.press("enter")
    await settle(pilot, app)
    return screen


@pytest.mark.slow
async def test_ask_a_seed_question_and_open_a_citation(backend: Backend) -> None:
    app = CommonsApp(backend, start_node=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f3")
        screen = await ask(pilot, app, "how do I run a community mirror?")
        answer = screen.current
        assert answer is not None and not answer.abstained and answer.citations
        assert all(c.origin == "seed" for c in answer.citations)
        shown = screen.query_one("#answer", Markdown).source
        assert "[1]" in shown
        citations = screen.query_one("#citations", OptionList)
        assert citations.option_count == len(answer.citations)
        assert screen.focused is citations  # so the number keys open citations

        # The first seed cited is a long document and its passage is near the end.
        cited = answer.citations[0]
        await pilot.press(str(cited.n))
        await settle(pilot, app)
        doc = app.screen
        assert isinstance(doc, DocumentScreen)
        highlighted = doc.query(".cited")
        assert len(highlighted) == 1
        assert cited.passage.split()[-1] in highlighted.first(Markdown).source
        assert doc.cited is highlighted.first()
        body = doc.query_one("#body", VerticalScroll)
        assert body.max_scroll_y > 0
        region = doc.cited.region
        assert body.region.y <= region.y < body.region.bottom  # the passage is on screen

        await pilot.press("escape")
        assert app.screen is screen
        history = screen.query_one("#history", OptionList)
        assert history.option_count == 1


async def test_abstains_and_keeps_a_history(backend: Backend) -> None:
    app = CommonsApp(backend, start_node=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f3")
        screen = await ask(pilot, app, "what is it?")
        assert screen.current is not None and screen.current.abstained
        assert ABSTAIN_TEXT in screen.query_one("#answer", Markdown).source
        assert not screen.query_one("#citations", OptionList).display

        await ask(pilot, app, "how do signatures protect documents?")
        assert [a.question for a in screen.history.answers] == [
            "how do signatures protect documents?",
            "what is it?",
        ]
        # Up in the question box brings back earlier questions.
        box = screen.query_one("#question", Input)
        box.focus()
        box.value = ""
        await pilot.press("up", "up")
        assert box.value == "what is it?"
        # Choosing from the history shows that answer again without asking.
        history = screen.query_one("#history", OptionList)
        history.focus()
        history.highlighted = 1
        await pilot.press("enter")
        await pilot.pause()
        assert screen.current is not None and screen.current.abstained
