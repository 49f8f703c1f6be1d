"""The real app under Pilot: browse, open, contribute, retract, help and the palette."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from textual.widgets import (
    DataTable,
    DirectoryTree,
    Input,
    Markdown,
    OptionList,
    ProgressBar,
    Select,
    Static,
)
from tui_support import (
    MY_TITLE,
    RIVER_TITLE,
    Clock,
    make_home,
    notifications,
    settle,
    title_of,
)

from commons.service import Commons
from tui.app import CommonsApp
from tui.backend import Backend
from tui.components.contribute import ContributeScreen
from tui.components.document import DocumentScreen
from tui.components.file_picker import FilePickerScreen
from tui.components.help import HelpScreen
from tui.components.identity import IdentityScreen
from tui.components.library import LibraryScreen
from tui.components.retract import RetractScreen
from tui.core import Badge

SEED_COUNT = 12



def titles(screen: LibraryScreen) -> list[str]:
    return [row.title for row in screen.shown]


def status(screen: LibraryScreen) -> str:
    return str(screen.query_one("#status", Static).render())


@pytest.mark.slow
async def test_browse_filter_and_open_a_document(backend: Backend) -> None:
    app = CommonsApp(backend, start_node=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        library = app.screen
        assert isinstance(library, LibraryScreen)
        assert len(library.shown) == SEED_COUNT + 2
        assert titles(library)[0] == MY_TITLE  # newest first
        assert {b for b, _ in library.badges.values()} == {Badge.VERIFIED}
        table = library.query_one(DataTable)
        river = table.get_row(library.shown[1].id)
        assert river[0] == "✓" and "river l" in river[2] and river[5] == "127.0.0.1"

        await pilot.press(*"mirror")
        await settle(pilot, app)  # the filter searches the text too: more documents say it
        assert "Running a community mirror" in titles(library) and len(titles(library)) > 1
        library.query_one(DataTable).move_cursor(
            row=titles(library).index("Running a community mirror")
        )
        await pilot.press("enter")
        await settle(pilot, app)
        doc = app.screen
        assert isinstance(doc, DocumentScreen)
        body = "".join(m.source for m in doc.query(Markdown))
        assert "mirror" in body.lower()
        provenance = str(doc.query_one("#provenance", Static).render())
        assert "signature verified" in provenance
        assert "commons seeds" in provenance and "seed" in provenance

        await pilot.press("escape")
        assert isinstance(app.screen, LibraryScreen)
        await pilot.press("escape")  # clears the filter
        assert len(library.shown) == SEED_COUNT + 2

        await pilot.press(*"tag:water")
        assert sorted(titles(library)) == sorted([MY_TITLE, RIVER_TITLE])
        await pilot.press("escape")
        library.query_one(DataTable).focus()
        await pilot.press("down", "a")  # the selected row is the river library's
        assert library.query_one("#author", Select).value == library.shown[0].author
        assert titles(library) == [RIVER_TITLE]
        await pilot.press("s", "c")  # typing in the table goes to the filter box
        assert library.query_one("#filter", Input).value == "sc"
        assert titles(library) == [RIVER_TITLE]  # "sc" is in "school"


async def test_a_document_that_does_not_verify_gets_a_red_badge(
    commons: Commons, backend: Backend
) -> None:
    doc = next(s for s in commons.documents() if title_of(s) == RIVER_TITLE)
    fields = doc.obj.to_json()
    fields["body"] = fields["body"].replace("sixty", "six")  # tampered after it was stored
    commons.store.query(
        "UPDATE objects SET raw = ? WHERE id = ?", (json.dumps(fields).encode(), doc.obj.id)
    )
    app = CommonsApp(backend, start_node=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        library = app.screen
        assert isinstance(library, LibraryScreen)
        assert library.badges[doc.obj.id.hex()][0] is Badge.INVALID
        assert library.query_one(DataTable).get_row(doc.obj.id.hex())[0] == "✗"
        assert "1 do NOT verify" in status(library)


@pytest.mark.slow
async def test_contribute_a_file_and_find_it_in_the_library(
    backend: Backend, tmp_path: Path
) -> None:
    (tmp_path / "notes").mkdir()
    note = tmp_path / "notes" / "well.md"
    note.write_text(
        "# Testing a well\n\nTake a sample after a week of no rain.\n\n"
        "## Where\n\nSend it to the district laboratory in a clean bottle.\n"
    )
    app = CommonsApp(backend, start_node=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        await pilot.press("f4")
        screen = app.screen
        assert isinstance(screen, ContributeScreen)
        screen.query_one("#path", Input).value = f"{note.parent}/"
        await pilot.press("ctrl+o")  # the file picker, in that directory
        # The tree's loader is a worker that never ends: wait for what it shows.
        picker = app.screen
        assert isinstance(picker, FilePickerScreen)
        tree = picker.query_one(DirectoryTree)
        for _ in range(100):
            if tree.root.children:
                break
            await pilot.pause(0.05)
        await pilot.press("down", "enter")  # well.md is its only file
        for _ in range(100):
            if app.screen is screen:
                break
            await pilot.pause(0.05)
        assert app.screen is screen
        assert screen.query_one("#path", Input).value == str(note)
        assert screen.query_one("#chunks", OptionList).option_count >= 1
        assert "Testing a well" in screen.query_one("#title", Input).placeholder
        screen.query_one("#tags", Input).value = "water, health"
        screen.query_one("#licence", Select).value = "CC-BY-SA-4.0"
        await pilot.pause()
        # Exactly what Ctrl+S signs, before it is signed.
        signed = str(screen.query_one("#signed", Static).render())
        assert "Testing a well" in signed and "tags: water, health" in signed
        passages = screen.query_one("#chunks", OptionList).option_count
        assert "licence: CC-BY-SA-4.0" in signed and f"{passages} passage" in signed
        assert "B," in signed  # its size
        await pilot.press("ctrl+s")
        await settle(pilot, app)
        assert any(n.startswith("Published") for n in notifications(app)), notifications(app)
        # A fresh form, with focus where the next contribution starts.
        assert screen.query_one("#path", Input).value == ""
        assert screen.query_one("#chunks", OptionList).option_count == 0
        assert screen.query_one("#progress", ProgressBar).percentage == 0.0
        assert "Testing a well" not in screen.query_one("#title", Input).placeholder
        assert "published Testing a well" in str(screen.query_one("#step", Static).render())
        assert "nothing yet" in str(screen.query_one("#signed", Static).render())
        assert app.focused is screen.query_one("#path", Input)

        await pilot.press("f2")
        await settle(pilot, app)
        library = app.screen
        assert isinstance(library, LibraryScreen)
        row = next(r for r in library.shown if r.title == "Testing a well")
        assert row.tags == ("health", "water") and row.origin == "local"
        assert row.licence == "CC-BY-SA-4.0"
        assert library.badges[row.id][0] is Badge.VERIFIED


async def test_contribute_reports_what_to_do_on_errors(backend: Backend, tmp_path: Path) -> None:
    app = CommonsApp(backend, start_node=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f4")
        await pilot.press("ctrl+s")  # nothing given
        await settle(pilot, app)
        assert any("Give a file path" in n for n in notifications(app))
        app.screen.query_one("#path", Input).value = str(tmp_path / "missing.md")
        await pilot.press("ctrl+s")
        await settle(pilot, app)
        assert any("Publishing failed" in n and "does not exist" in n for n in notifications(app))
        assert str(app.screen.query_one("#step", Static).render()) == "not published"


@pytest.mark.slow
async def test_paste_text_then_retract_it_from_identity(backend: Backend, commons: Commons) -> None:
    clock = commons.clock
    assert isinstance(clock, Clock)
    clock.now += 60
    app = CommonsApp(backend, start_node=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f4")
        await pilot.pause()
        await pilot.click("#paste")
        await pilot.press(*"A short note about pumps.")
        app.screen.query_one("#title", Input).value = "Pump note"
        await pilot.press("ctrl+s")
        await settle(pilot, app)
        mine = commons.documents(author=commons.public_key.hex())
        assert [title_of(d) for d in mine] == [MY_TITLE, "Pump note"]

        await pilot.press("f6")
        await settle(pilot, app)
        identity = app.screen
        assert isinstance(identity, IdentityScreen)
        assert "tester" in str(identity.query_one("#who", Static).render())
        assert [r.title for r in identity.mine] == ["Pump note", MY_TITLE]
        await pilot.press("delete")
        assert isinstance(app.screen, RetractScreen)
        await pilot.press(*"typo", "enter")
        await settle(pilot, app)
        assert app.screen is identity
        assert [r.title for r in identity.mine] == [MY_TITLE]
        assert commons.store.count("retraction") == 1

        await pilot.press("f2")
        await settle(pilot, app)
        assert isinstance(app.screen, LibraryScreen)
        assert "Pump note" not in titles(app.screen)


async def test_only_the_author_can_retract(backend: Backend) -> None:
    app = CommonsApp(backend, start_node=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        library = app.screen
        assert isinstance(library, LibraryScreen)
        table = library.query_one(DataTable)
        table.focus()
        table.move_cursor(row=table.row_count - 1)  # the oldest seed: not ours
        await pilot.press("delete")
        assert not isinstance(app.screen, RetractScreen)
        assert any("only its author can retract" in n for n in notifications(app))


async def test_help_screen_and_command_palette(backend: Backend) -> None:
    app = CommonsApp(backend, start_node=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert isinstance(app.screen, LibraryScreen)
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"identity")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await settle(pilot, app)
        assert isinstance(app.screen, IdentityScreen)
        assert app.current_mode == "identity"


def test_fixed_home_is_deterministic(tmp_path: Path) -> None:
    a = make_home(tmp_path / "a")
    try:
        a_ids = sorted(s.obj.id for s in a.documents())
    finally:
        a.close()
    b = make_home(tmp_path / "b")
    try:
        b_ids = sorted(s.obj.id for s in b.documents())
    finally:
        b.close()
    assert a_ids == b_ids and len(a_ids) == SEED_COUNT + 2
