"""Peers and sync as a newcomer meets them, in real processes: what `peers add`,
`peers ls` and `sync` say, and what a running node logs without -v."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sync_support import Peer, add_file, free_port, peers_in, wait_for


def run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tui", "--home", str(home), *args],
        capture_output=True, text=True, timeout=120, env=os.environ.copy(),
    )


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[[str], Peer]]:
    yield from peers_in(tmp_path)


def test_peers_add_warns_of_an_unreachable_address_and_rm_hides_it(
    spawn: Callable[[str], Peer],
) -> None:
    ana = spawn("ana")
    nowhere = f"http://127.0.0.1:{free_port()}"
    added = run(ana.home, "peers", "add", nowhere)
    assert added.returncode == 0, added.stderr
    assert f"nothing answers at {nowhere}" in added.stderr and "peers rm" in added.stderr
    assert "ssl:default" not in added.stderr
    listed = run(ana.home, "peers", "ls").stdout
    assert nowhere in listed and "not reached yet" in listed and "health" not in listed
    assert run(ana.home, "peers", "rm", nowhere).returncode == 0
    listed = run(ana.home, "peers", "ls").stdout
    assert nowhere not in listed and "[removed]" not in listed


def test_sync_with_nowhere_says_so_without_tls_jargon(spawn: Callable[[str], Peer]) -> None:
    ana = spawn("ana")
    nowhere = f"http://127.0.0.1:{free_port()}"
    result = run(ana.home, "sync", nowhere)
    assert result.returncode == 1
    assert "nothing answers at 127.0.0.1" in result.stderr
    assert "ssl:" not in result.stderr


@pytest.mark.slow
def test_sync_says_whether_the_peer_was_added_and_serve_logs_it(
    spawn: Callable[[str], Peer], tmp_path: Path
) -> None:
    ana = spawn("ana").start()
    ben = spawn("ben")
    add_file(ana, tmp_path, "Wells", "Dig below the frost line.")
    result = run(ben.home, "sync", ana.url)
    assert result.returncode == 0, result.stderr
    assert f"{ana.url} is now among your peers" in result.stdout or (
        f"{ana.url} was not added to your peers" in result.stdout
    )
    ben.start(ana)  # a node with a peer: each round is logged, at INFO, without -v
    wait_for(lambda: " sync " in ben.log.read_text(), "ben logs a sync")
    lines = [line for line in ben.log.read_text().splitlines() if " sync " in line]
    assert "INFO" in lines[0] and ana.url in lines[0] and "fetched" in lines[0]
    ben.stop()
    ana.stop()


def test_serve_listens_where_the_config_says(spawn: Callable[[str], Peer]) -> None:
    ana = spawn("ana")
    port = free_port()
    assert run(ana.home, "config", "set", "listen", f"127.0.0.1:{port}").returncode == 0
    ana.port, ana.url = port, f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "tui", "--home", str(ana.home), "serve"]
    with open(ana.log, "ab") as log:
        ana.proc = subprocess.Popen(argv, stdout=log, stderr=log, env=os.environ.copy())
    wait_for(ana.ready, "ana serves on the port from its config")
    ana.stop()
    # Each gossip event is one line of the output, not two.
    started = [line for line in ana.log.read_text().splitlines() if "listening on" in line]
    assert len(started) == 1 and "INFO" in started[0], started
