"""The commons app: five screens as modes, a help screen and the command palette."""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import ModalScreen, Screen

from tui.backend import Backend
from tui.components.ask import AskScreen
from tui.components.contribute import ContributeScreen
from tui.components.help import HelpScreen
from tui.components.identity import IdentityScreen
from tui.components.library import LibraryScreen
from tui.components.name import NameScreen
from tui.components.peers import PeersScreen
from tui.core import format_event

log = logging.getLogger(__name__)

# Bursts of store changes (a sync fetching hundreds of objects) refresh the Library once.
REFRESH_DELAY = 0.3
REMOTE_POLL_SECONDS = 5.0


class CommonsApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "commons"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]
    BINDINGS: ClassVar[list[BindingType]] = [
        # Priority: the screens' keys work even where a text area wants F6 for itself.
        Binding("f1", "help", "Help", show=False, priority=True),
        Binding("question_mark", "help", "Help", show=False),
        Binding("f2", "switch_mode('library')", "Library", show=False, priority=True),
        Binding("f3", "switch_mode('ask')", "Ask", show=False, priority=True),
        Binding("f4", "switch_mode('contribute')", "Contribute", show=False, priority=True),
        Binding("f5", "switch_mode('peers')", "Peers", show=False, priority=True),
        Binding("f6", "switch_mode('identity')", "Identity", show=False, priority=True),
    ]

    class StoreChanged(Message):
        """Something was stored or removed (posted from whichever thread wrote it)."""

    class NodeLogged(Message):
        def __init__(self, line: str) -> None:
            super().__init__()
            self.line = line

    def __init__(
        self, backend: Backend, *, start_node: bool = True, warm_index: bool = False
    ) -> None:
        super().__init__()
        self.backend = backend
        self.start_node = start_node
        self.warm_index = warm_index
        self.node_running = False
        self.node_log: deque[str] = deque(maxlen=500)
        self.mode_screens: dict[str, Screen[Any]] = {}
        self._refresh_pending = False
        factories: dict[str, Callable[[], Screen[Any]]] = {
            "library": lambda: LibraryScreen(backend),
            "ask": lambda: AskScreen(backend),
            "contribute": lambda: ContributeScreen(backend),
            "peers": lambda: PeersScreen(backend, list(self.node_log)),
            "identity": lambda: IdentityScreen(backend),
        }
        for mode, factory in factories.items():
            self.add_mode(mode, self._remember(mode, factory))

    def _remember(self, mode: str, factory: Callable[[], Screen[Any]]) -> Callable[[], Screen[Any]]:
        def make() -> Screen[Any]:
            screen = factory()
            self.mode_screens[mode] = screen
            return screen

        return make

    async def on_mount(self) -> None:
        await self.switch_mode("library")
        if not self.backend.watch(self._store_changed):
            self.set_interval(REMOTE_POLL_SECONDS, self.refresh_views)
        node = self.backend.node
        if self.warm_index and (node is None or not self.start_node):
            self.warm()  # a node does this itself when it starts
        if node is not None and self.start_node:
            node.subscribe(self._node_event)
            try:
                await node.start()
            except Exception as exc:  # a busy port must not stop people browsing
                log.exception("the node did not start")
                with contextlib.suppress(Exception):  # let go of whatever it had opened
                    await node.stop()
                self.backend.node = None
                self.backend.node_note = f"the node did not start: {exc}"
                self.notify(
                    f"{exc}. Browsing and asking work; to gossip, free the port or pick"
                    " another with --listen.",
                    title="The node did not start",
                    severity="error",
                    timeout=10,
                )
            else:
                self.node_running = True
                self.backend.node_listening()
        if self.backend.fresh:
            self.push_screen(NameScreen(self.backend, first_run=True))

    async def on_unmount(self) -> None:
        if self.node_running and self.backend.node is not None:
            self.node_running = False
            await self.backend.node.stop()

    @work(thread=True, exclusive=True, group="warm-index")
    def warm(self) -> None:
        """Index what is stored but not indexed yet, off the UI thread."""
        try:
            self.backend.warm_index()
        except Exception as exc:  # asking will report it again, with what to do
            log.warning("the search index did not open: %s", exc)

    # -- live updates ---------------------------------------------------------

    def _store_changed(self) -> None:
        """Called in whichever thread wrote to the store; post_message is thread-safe."""
        self.post_message(self.StoreChanged())

    def _node_event(self, event: object) -> None:
        self.post_message(self.NodeLogged(format_event(event)))

    def on_commons_app_store_changed(self) -> None:
        if not self._refresh_pending:
            self._refresh_pending = True
            self.set_timer(REFRESH_DELAY, self.refresh_views)

    def refresh_views(self) -> None:
        self._refresh_pending = False
        for mode in ("library", "identity"):
            screen = self.mode_screens.get(mode)
            if screen is not None and screen.is_mounted:
                screen.load()  # type: ignore[attr-defined]

    def on_commons_app_node_logged(self, message: NodeLogged) -> None:
        self.node_log.append(message.line)
        peers = self.mode_screens.get("peers")
        if isinstance(peers, PeersScreen) and peers.is_mounted:
            peers.write_log(message.line)

    # -- actions --------------------------------------------------------------

    def dialog_open(self) -> bool:
        """A dialog (name, retract, file picker) waits for an answer: switching screens
        under it would leave it to close on the wrong screen."""
        return isinstance(self.screen, ModalScreen) and not isinstance(self.screen, HelpScreen)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not (action == "switch_mode" and self.dialog_open())

    async def go_to(self, mode: str) -> None:
        """Switch screens from the palette, unless a dialog waits for an answer."""
        if self.dialog_open():
            self.notify("Answer the dialog first (escape closes it).", severity="warning")
            return
        await self.switch_mode(mode)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    async def action_sync_now(self) -> None:
        await self.switch_mode("peers")
        peers = self.mode_screens["peers"]
        assert isinstance(peers, PeersScreen)
        peers.action_sync_now()

    async def action_add_peer(self) -> None:
        await self.switch_mode("peers")
        self.mode_screens["peers"].query_one("#address").focus()

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        def go(mode: str) -> Callable[[], Any]:
            return lambda: self.go_to(mode)

        yield SystemCommand("Library", "Browse and filter every document (F2)", go("library"))
        yield SystemCommand("Ask a question", "Answers cite the documents (F3)", go("ask"))
        yield SystemCommand("Contribute", "Sign and publish a file or pasted text (F4)",
                            go("contribute"))
        yield SystemCommand("Peers", "Peers, their state, the search index and the gossip log"
                            " (F5)", go("peers"))
        yield SystemCommand("Add a peer", "Gossip with another node by its address",
                            self.action_add_peer)
        yield SystemCommand("Sync now", "Reconcile with peers right away", self.action_sync_now)
        yield SystemCommand("Identity", "Your key, name and home; retract your documents (F6)",
                            go("identity"))
        yield SystemCommand("Help", "Every key, screen by screen (F1)", self.action_help)
        yield from super().get_system_commands(screen)
