"""The real `commons` app in a real terminal (tmux): keys in, screen text out."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tui_support import make_home

from commons.service import Commons
from commons.storage.home import HomePaths

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("tmux") is None,
        reason="tmux is not installed (`make test` installs it; or apt-get install tmux)",
    ),
]


class Terminal:
    """One tmux server of our own, running one program in an 80x24 window."""

    def __init__(self, socket: str, env: dict[str, str]) -> None:
        self.socket = socket
        self.env = env

    def tmux(self, *args: str) -> str:
        out = subprocess.run(
            ["tmux", "-L", self.socket, *args],
            env=self.env, capture_output=True, text=True, check=False, timeout=30,
        )
        return out.stdout

    def start(self, command: list[str]) -> None:
        self.tmux("new-session", "-d", "-s", "app", "-x", "80", "-y", "24",
                  subprocess.list2cmdline(command))
        self.tmux("set-option", "-t", "app", "remain-on-exit", "on")

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "app", *keys)

    def type(self, text: str) -> None:
        self.tmux("send-keys", "-t", "app", "-l", text)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "app")

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.1)
        raise AssertionError(f"{text!r} never appeared; the screen was:\n{screen}")

    def exited(self) -> bool:
        return self.tmux("display-message", "-p", "-t", "app", "#{pane_dead}").strip() == "1"


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    env = {**os.environ, "COMMONS_EMBEDDER": "fake", "TERM": "xterm-256color"}
    env.pop("TMUX", None)  # never talk to a tmux the tests run inside
    term = Terminal(f"commons-test-{os.getpid()}", env)
    try:
        yield term
    finally:
        term.tmux("kill-server")


def test_the_real_app_in_a_terminal(tmp_path: Path, terminal: Terminal) -> None:
    home = tmp_path / "home"
    make_home(home).close()
    terminal.start([sys.executable, "-m", "tui", "--home", str(home), "--offline"])

    screen = terminal.wait_for("14 of 14 documents")
    assert "F2 Library" in screen and "Welcome to the commons" in screen
    terminal.wait_for("14 signatures verified")

    terminal.type("mirror")
    screen = terminal.wait_for("1 of 14 documents")
    assert "Running a community" in screen
    terminal.keys("Enter")
    terminal.wait_for("Who should run one")  # the document, rendered
    terminal.wait_for("signature verified")  # and its provenance beside it

    terminal.keys("Escape")
    terminal.keys("F3")
    terminal.wait_for("History")
    terminal.type("how do I run a community mirror?")
    terminal.keys("Enter")
    screen = terminal.wait_for("[1] Running a community mirror")
    terminal.keys("1")
    terminal.wait_for("[1] cited passage")

    terminal.keys("C-q")
    deadline = time.monotonic() + 20
    while not terminal.exited() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert terminal.exited()
    with Commons(HomePaths(home), clock=lambda: 0):  # the app let go of the home
        pass
