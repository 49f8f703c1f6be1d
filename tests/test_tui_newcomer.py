"""A newcomer's first hour in the real app, under Pilot: a name, a licence, finding
words in the text, questions kept in the home, a node that keeps its port."""

from __future__ import annotations

import logging
import threading
import tomllib
from pathlib import Path

from textual.widgets import Input, OptionList, Select, Static
from tui_support import MY_TITLE, RIVER_TITLE, make_backend, notifications, settle

from commons.service import Commons
from commons.settings import Settings
from tui.app import CommonsApp
from tui.backend import Backend, Whoami
from tui.components.ask import AskScreen
from tui.components.contribute import ContributeScreen
from tui.components.identity import IdentityScreen
from tui.components.library import LibraryScreen
from tui.components.name import NameScreen
from tui.root import Root
from tui.run import log_to_file


def titles(screen: LibraryScreen) -> list[str]:
    return [row.title for row in screen.shown]


async def test_first_run_asks_for_a_name_and_escape_skips(commons: Commons) -> None:
    commons.clock.now += 60  # type: ignore[attr-defined]  (a profile newer than the old one)
    app = CommonsApp(make_backend(commons, fresh=True), start_node=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        assert isinstance(app.screen, NameScreen)
        await pilot.press(*"Ana Lima", "enter")
        await settle(pilot, app)
        assert isinstance(app.screen, LibraryScreen)
    assert commons.whoami()["name"] == "Ana Lima"

    app = CommonsApp(make_backend(commons, fresh=True), start_node=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        await pilot.press("escape")
        await settle(pilot, app)
        assert isinstance(app.screen, LibraryScreen)
    assert commons.whoami()["name"] == "Ana Lima"

    app = CommonsApp(make_backend(commons), start_node=False)  # not a first run: no question
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        assert isinstance(app.screen, LibraryScreen)


async def test_the_screen_keys_wait_while_a_dialog_is_open(commons: Commons) -> None:
    """F5 pressed while the first-run name dialog is saving used to switch screens
    under it, and the dialog's closing then crashed the app."""
    commons.clock.now += 60  # type: ignore[attr-defined]
    backend = make_backend(commons, fresh=True)
    signing = threading.Event()
    set_name = backend.set_name

    def slow_set_name(name: str) -> Whoami:  # as on a busy machine
        signing.wait(30)
        return set_name(name)

    backend.set_name = slow_set_name  # type: ignore[method-assign]
    app = CommonsApp(backend, start_node=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        assert isinstance(app.screen, NameScreen)
        await pilot.press(*"Ana Lima", "enter", "f5", "f3")  # while the name is being signed
        await pilot.pause()
        assert isinstance(app.screen, NameScreen) and app.current_mode == "library"
        signing.set()
        await settle(pilot, app)
        assert isinstance(app.screen, LibraryScreen)  # the dialog closed where it opened
        await pilot.press("f5")
        await settle(pilot, app)
        assert app.current_mode == "peers"  # and the keys work again
    assert app.return_code in (0, None)
    assert commons.whoami()["name"] == "Ana Lima"


async def test_identity_screen_changes_the_name(backend: Backend, commons: Commons) -> None:
    commons.clock.now += 60  # type: ignore[attr-defined]
    app = CommonsApp(backend, start_node=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f6")
        await settle(pilot, app)
        identity = app.screen
        assert isinstance(identity, IdentityScreen)
        await pilot.press("n")
        assert isinstance(app.screen, NameScreen)
        assert app.screen.query_one("#name", Input).value == "tester"
        app.screen.query_one("#name", Input).value = "River Keeper"
        await pilot.press("enter")
        await settle(pilot, app)
        assert app.screen is identity
        assert "River Keeper" in str(identity.query_one("#who", Static).render())
    assert commons.whoami()["name"] == "River Keeper"


async def test_library_filter_searches_text_and_names_by_prefix(backend: Backend) -> None:
    app = CommonsApp(backend, start_node=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        library = app.screen
        assert isinstance(library, LibraryScreen)
        box = library.query_one("#filter", Input)

        async def shown(text: str) -> list[str]:
            box.value = text
            await settle(pilot, app)
            return titles(library)

        found = await shown("tombstone")  # in bodies, not in any title
        assert len(found) >= 3 and not any("tombstone" in t.lower() for t in found)
        assert await shown("author:commons") == await shown("author:Seeds")
        assert len(await shown("author:seeds")) == 12
        assert await shown('author:"river lib"') == [RIVER_TITLE]
        assert await shown("author:RIVER") == [RIVER_TITLE]
        gossip = await shown("tag:goss")
        assert gossip and all("goss" in " ".join(r.tags) for r in library.shown)
        assert sorted(await shown("tag:WAT")) == sorted([MY_TITLE, RIVER_TITLE])


async def test_questions_are_kept_in_the_home_until_cleared(
    backend: Backend, commons: Commons
) -> None:
    app = CommonsApp(backend, start_node=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3")
        await pilot.press(*"how do I run a mirror?", "enter")
        await settle(pilot, app)
    assert (commons.paths.root / "questions.jsonl").exists()

    app = CommonsApp(make_backend(commons), start_node=False)  # the next session
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3")
        await settle(pilot, app)
        ask = app.screen
        assert isinstance(ask, AskScreen)
        history = ask.query_one("#history", OptionList)
        assert history.option_count == 1
        assert str(history.get_option_at_index(0).prompt) == "how do I run a mirror?"
        await pilot.press("ctrl+l")
        await settle(pilot, app)
        assert history.option_count == 0
        assert any("History cleared" in n for n in notifications(app))
    assert not (commons.paths.root / "questions.jsonl").exists()


async def test_licence_is_chosen_never_assumed(commons: Commons, tmp_path: Path) -> None:
    app = CommonsApp(make_backend(commons), start_node=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f4")
        screen = app.screen
        assert isinstance(screen, ContributeScreen)
        assert screen.query_one("#licence", Select).value == "not stated"
        assert "only your own work" in str(screen.query_one("#reminder", Static).render())
        await pilot.click("#paste")
        await pilot.press(*"Notes on the pump.")
        await pilot.press("ctrl+s")
        await settle(pilot, app)
    mine = [d for d in documents_of(commons) if d["title"] == "Notes on the pump."]
    assert [d["licence"] for d in mine] == ["not stated"]

    app = CommonsApp(make_backend(commons, default_licence="CC0-1.0"), start_node=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f4")
        assert app.screen.query_one("#licence", Select).value == "CC0-1.0"


def documents_of(commons: Commons) -> list[dict[str, object]]:
    from commons.api import LocalApi

    return LocalApi(commons).documents(author=None, tag=None)


async def test_a_path_typed_as_the_title_is_not_published(
    backend: Backend, commons: Commons, tmp_path: Path
) -> None:
    note = tmp_path / "water.md"
    note.write_text("# Water\n\nBoil it.\n")
    before = commons.store.count("document")
    app = CommonsApp(backend, start_node=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f4")
        screen = app.screen
        screen.query_one("#path", Input).value = str(note)
        screen.query_one("#title", Input).value = str(note)
        await pilot.press("ctrl+s")
        await settle(pilot, app)
        assert any("looks like a file path" in n for n in notifications(app))
        assert app.focused is screen.query_one("#title", Input)
    assert commons.store.count("document") == before


async def test_the_apps_node_keeps_its_port(tmp_path: Path) -> None:
    home = tmp_path / "home"
    environ = {"COMMONS_EMBEDDER": "fake"}
    root = Root(Settings.load({"home": str(home)}, environ))
    backend = root.backend(offline=False, listen="127.0.0.1:0", peers=[])
    try:
        app = CommonsApp(backend)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot, app)
            assert app.node_running
            port = backend.node.port  # type: ignore[union-attr]
    finally:
        backend.close()
    config = tomllib.loads((home / "config.toml").read_text())
    assert config["app"]["listen"] == f"127.0.0.1:{port}"
    again = Settings.load({"home": str(home)}, environ)
    assert again.app_listen == f"127.0.0.1:{port}"


def test_the_apps_log_file_gets_info_lines(tmp_path: Path) -> None:
    logging.getLogger().setLevel(logging.WARNING)
    path = tmp_path / "tui.log"
    with log_to_file(path):
        logging.getLogger("sync.http.node").info("synced with http://127.0.0.1:7400")
    assert "synced with http://127.0.0.1:7400" in path.read_text()
