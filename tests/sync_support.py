"""Helpers for tests that run real `commons serve` and `commons mirror` processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from commons.remote import RemoteApi
from commons.service import Commons
from commons.storage.home import HomePaths

INTERVAL = "0.3"
DEADLINE = 60.0


def now() -> int:
    return int(time.time())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(home: Path, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "tui", "--home", str(home), *args],
        capture_output=True, text=True, timeout=120, env=os.environ.copy(),
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def wait_for(check: Callable[[], Any], what: str, deadline: float = DEADLINE) -> Any:
    end = time.monotonic() + deadline
    while True:
        try:
            value = check()
        except Exception:  # not ready yet (connection refused, node.json not written...)
            value = None
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.1)


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


class Peer:
    """One `commons serve` process and its home."""

    def __init__(self, root: Path, name: str) -> None:
        self.name = name
        self.home = root / name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = root / f"{name}.log"
        with Commons.init(HomePaths(self.home), clock=now, name=name):
            pass

    def start(self, *peers: Peer, extra: tuple[str, ...] = (), command: str = "serve") -> Peer:
        if self.proc is not None and self.proc.poll() is None:
            raise AssertionError(f"{self.name} is already running")
        argv = [sys.executable, "-m", "tui", "--home", str(self.home), command,
                "--listen", f"127.0.0.1:{self.port}", "--interval", INTERVAL, *extra]
        for peer in peers:
            argv += ["--peer", peer.url]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=log, env=os.environ.copy())
        wait_for(self.ready, f"{self.name} serves /status and its local API")
        return self

    def ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited: {self.log.read_text()[-2000:]}")
        info = HomePaths(self.home).node_info()
        return bool(get_json(self.url + "/status")) and info is not None and \
            info.get("pid") == self.proc.pid

    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = get_json(self.url + "/status")
        return result

    @property
    def api(self) -> RemoteApi:
        info = HomePaths(self.home).node_info()
        assert info is not None
        return RemoteApi.from_node_info(info)

    def titles(self) -> set[str]:
        return {d["title"] for d in self.api.documents(author=None, tag=None)}

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def peers_in(root: Path) -> Iterator[Callable[[str], Peer]]:
    """The body of a `spawn` fixture: make peers under `root`, kill them all at the end."""
    peers: list[Peer] = []

    def make(name: str) -> Peer:
        peer = Peer(root, name)
        peers.append(peer)
        return peer

    try:
        yield make
    finally:
        for peer in peers:
            if peer.proc is not None and peer.proc.poll() is None:
                peer.proc.kill()
                peer.proc.wait()


def add_file(peer: Peer, tmp_path: Path, title: str, text: str) -> str:
    path = tmp_path / f"{title.replace(' ', '-')}.md"
    path.write_text(f"# {title}\n\n{text}\n")
    added = json.loads(cli(peer.home, "add", str(path), "--json"))
    oid: str = added[0]["id"]
    return oid
