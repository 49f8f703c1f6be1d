"""Peers: the node and its search index, its peers and their state, add or remove one,
sync now, the gossip log."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import Button, DataTable, Footer, Input, RichLog, Static

from commons.model.errors import CommonsError
from sync.gossip.peers import PeerUrlError, normalise_url
from tui.backend import Backend
from tui.components.base import CommonsScreen
from tui.components.navbar import NavBar
from tui.core import PEER_COLUMNS, PeerRow, index_progress, sync_summary

REFRESH_SECONDS = 1.0


class PeersScreen(CommonsScreen):
    CSS_PATH = Path(__file__).with_suffix(".tcss")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "sync_now", "Sync now"),
        Binding("delete", "remove", "Remove peer"),
    ]

    def __init__(self, backend: Backend, log_lines: list[str] | None = None) -> None:
        super().__init__(backend, id="peers")
        self.backlog = list(log_lines or [])
        self.rows: list[PeerRow] = []
        self.index_line = ""  # the node's search index, as of the last refresh (markup-safe)

    def compose(self) -> ComposeResult:
        yield NavBar("peers")
        yield Static(self.status_text(), id="node-status")
        table: DataTable[str] = DataTable(id="peer-table", cursor_type="row", zebra_stripes=True)
        yield table
        with Horizontal(id="peer-actions"):
            yield Input(placeholder="peer address HOST:PORT, enter adds",
                        id="address", compact=True)
            yield Button("Add", id="add", compact=True)
            yield Button("Remove del", id="remove", compact=True)
            yield Button("Sync now ^s", id="sync", variant="primary", compact=True)
        log = RichLog(id="gossip-log", wrap=True, markup=False, max_lines=500)
        log.border_title = "Gossip log"
        yield log
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#peer-table", DataTable)
        for label in PEER_COLUMNS:
            table.add_column(label, key=label.lower())
        log = self.query_one("#gossip-log", RichLog)
        for line in self.backlog:
            log.write(line)
        if not self.backend.has_peers:
            for widget in ("#address", "#add", "#remove", "#sync"):
                self.query_one(widget).disabled = True
            log.write("no node is running in this app, so nothing gossips here")
            return
        if self.backend.node is None:
            log.write("the node that owns this home keeps its gossip log in its own output")
        self.refresh_peers()
        self.set_interval(REFRESH_SECONDS, self.refresh_peers)
        self.query_one("#address", Input).focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("sync_now", "remove"):
            return self.backend.has_peers
        return True

    def status_text(self) -> str:
        backend = self.backend
        if backend.node is not None:
            text = (f"node listening on [b]{backend.node.url}[/b] · gossiping while the app"
                    " is open")
        elif backend.remote_url:
            text = f"the node at [b]{backend.remote_url}[/b] owns this home; this shows its peers"
        else:
            return f"no node running · {backend.node_note or 'start the app without --offline'}"
        return f"{text}\n{self.index_line}" if self.index_line else text

    def write_log(self, line: str) -> None:
        self.query_one("#gossip-log", RichLog).write(line)

    @work(exclusive=True, group="peers-refresh")
    async def refresh_peers(self) -> None:
        """Our node's table is read in this loop; another process's over HTTP in a thread."""
        try:
            rows = await self.backend.peers()
        except CommonsError as exc:
            self.query_one("#node-status", Static).update(f"cannot read the peers: {exc}")
            return
        try:
            status = await self.backend.node_status()
        except CommonsError as exc:
            index = f"cannot read the node's status: {exc}"
        else:
            index = index_progress(status) if status is not None else ""
        self.index_line = escape(index)
        self.query_one("#node-status", Static).update(self.status_text())
        self.show_rows(rows)

    def show_rows(self, rows: list[PeerRow]) -> None:
        table = self.query_one("#peer-table", DataTable)
        now = self.backend.clock()
        if [r.url for r in rows] != [r.url for r in self.rows]:
            keep = table.cursor_row
            table.clear()
            for row in rows:
                table.add_row(*row.cells(now), key=row.url)
            if rows:
                table.move_cursor(row=min(max(keep, 0), len(rows) - 1))
        else:
            for row in rows:
                for label, value in zip(PEER_COLUMNS, row.cells(now), strict=True):
                    table.update_cell(row.url, label.lower(), value, update_width=True)
        self.rows = rows

    # -- actions --------------------------------------------------------------

    @on(Input.Submitted, "#address")
    @on(Button.Pressed, "#add")
    def add_pressed(self) -> None:
        box = self.query_one("#address", Input)
        try:
            url = normalise_url(box.value)
        except PeerUrlError as exc:
            self.notify(str(exc), title="Cannot add that peer", severity="warning")
            return
        box.value = ""
        self.add_peer(url)

    @work(exclusive=True, group="peers-add")
    async def add_peer(self, url: str) -> None:
        self.write_log(f"adding {url}…")
        try:
            await self.backend.add_peer(url)
        except Exception as exc:  # unreachable, refused, bad address: the node says which
            self.notify(f"{url}: {exc}. Check the address and that the peer is running.",
                        title="Adding the peer failed", severity="error", timeout=8)
            return
        self.notify(f"Added {url}; gossip syncs with it from now on (ctrl+s syncs now).")
        self.refresh_peers()

    @on(Button.Pressed, "#remove")
    def action_remove(self) -> None:
        table = self.query_one("#peer-table", DataTable)
        if not self.rows or not 0 <= table.cursor_row < len(self.rows):
            return
        self.remove_peer(self.rows[table.cursor_row].url)

    @work(exclusive=True, group="peers-remove")
    async def remove_peer(self, url: str) -> None:
        try:
            await self.backend.remove_peer(url)
        except Exception as exc:
            self.notify(str(exc), title="Removing the peer failed", severity="error")
            return
        self.notify(f"Removed {url}.")
        self.refresh_peers()

    @on(Button.Pressed, "#sync")
    def action_sync_now(self) -> None:
        if not self.backend.has_peers:
            self.notify(self.status_text(), title="No node", severity="warning")
            return
        self.sync_now()

    @work(exclusive=True, group="peers-sync")
    async def sync_now(self) -> None:
        button = self.query_one("#sync", Button)
        button.disabled = True
        self.write_log("syncing with peers now…")
        try:
            results = await self.backend.sync_now()
        except Exception as exc:
            self.notify(f"{exc}. The gossip log says which peer failed.",
                        title="Sync failed", severity="error", timeout=8)
        else:
            self.notify(sync_summary(results), title="Sync now")
        finally:
            button.disabled = False
        self.refresh_peers()
