"""LAN discovery: two real nodes, each in its own network namespace, joined by a
veth pair that the test creates (as root), find each other over mDNS and sync.

Addresses exist only inside those namespaces (10.212.N.0/24); nothing touches
the machine's own network, and both namespaces are deleted at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sync_support import now, wait_for

from commons.service import Commons
from commons.storage.home import HomePaths
from sync.discovery import Found, instance_name, lan_addresses, parse_found

KEY = "ab" * 32


def test_announcements_are_checked_before_use() -> None:
    good = {b"key": KEY.encode(), b"name": "école\x1b[31m".encode(), b"mirror": b"1"}
    assert parse_found(good, ["10.0.0.5", "::1", "224.0.0.251", "junk"], 7400) == [
        Found("http://10.0.0.5:7400", KEY, "école[31m", True)]
    assert parse_found({**good, b"key": b"<script>"}, ["10.0.0.5"], 7400) == []
    assert parse_found(good, ["10.0.0.5"], 0) == []
    assert parse_found({b"key": KEY.encode()}, ["10.0.0.5"], 80)[0].name is None
    assert instance_name("a school/mirror", KEY) == "a-school-mirror-abababab._commons._tcp.local."


def test_loopback_is_never_announced() -> None:
    assert lan_addresses("127.0.0.1", []) == []
    assert lan_addresses("10.1.2.3", []) == ["10.1.2.3"]
    assert lan_addresses("0.0.0.0", ["http://192.168.1.9:7400"]) == ["192.168.1.9"]
    assert "127.0.0.1" not in lan_addresses("0.0.0.0", [])


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)


def _can_make_namespaces() -> str | None:
    if os.geteuid() != 0:
        return "needs root to create network namespaces and a veth pair"
    if shutil.which("ip") is None:
        return "needs the ip command (iproute2)"
    return None


@pytest.fixture
def lan() -> Iterator[list[tuple[str, str]]]:
    """Two namespaces joined by a veth pair: [(namespace, address), ...]."""
    reason = _can_make_namespaces()
    if reason:
        pytest.skip(reason)
    tag = f"{os.getpid() % 100000}"
    spaces = [(f"c12a{tag}", "10.212.0.1"), (f"c12b{tag}", "10.212.0.2")]
    made: list[str] = []
    try:
        for ns, _ in spaces:
            _ip("netns", "add", ns)
            made.append(ns)
        _ip("link", "add", f"va{tag}", "type", "veth", "peer", "name", f"vb{tag}")
        for (ns, address), dev in zip(spaces, (f"va{tag}", f"vb{tag}"), strict=True):
            _ip("link", "set", dev, "netns", ns)
            _ip("-n", ns, "addr", "add", f"{address}/24", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up", "multicast", "on")
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "route", "add", "224.0.0.0/4", "dev", dev)
    except subprocess.CalledProcessError as exc:
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        pytest.skip(f"cannot build the test network: {exc.stderr.decode().strip()}")
    try:
        yield spaces
    finally:
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20)


def _in(ns: str, *argv: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *argv]


def _peers(ns: str, home: Path) -> list[dict[str, object]]:
    out = subprocess.run(_in(ns, sys.executable, "-m", "tui", "--home", str(home), "peers",
                             "ls", "--json"), capture_output=True, text=True, timeout=60,
                         env=os.environ.copy())
    assert out.returncode == 0, out.stderr
    rows: list[dict[str, object]] = json.loads(out.stdout)
    return rows


@pytest.mark.slow
def test_two_nodes_on_a_lan_find_each_other_and_sync(
        lan: list[tuple[str, str]], tmp_path: Path) -> None:
    homes, procs, keys = [], [], []
    try:
        for i, (ns, address) in enumerate(lan):
            home = tmp_path / f"node{i}"
            with Commons.init(HomePaths(home), clock=now, name=f"node{i}") as c:
                keys.append(c.public_key.hex())
            homes.append(home)
            command = "mirror" if i == 0 else "serve"
            log = open(tmp_path / f"node{i}.log", "wb")  # noqa: SIM115 (closed with the process)
            procs.append(subprocess.Popen(
                _in(ns, sys.executable, "-m", "tui", "--home", str(home), command,
                    "--listen", f"{address}:7400", "--interval", "0.5",
                    *(["--name", f"node{i}"] if command == "serve" else [])),
                stdout=log, stderr=log, env=os.environ.copy()))
        (ns_a, addr_a), (ns_b, addr_b) = lan

        def found(ns: str, home: Path, url: str, key: str) -> bool:
            for proc in procs:
                assert proc.poll() is None, (tmp_path / "node0.log").read_text()[-2000:]
            return any(p["url"] == url and p["source"] == "discovered" and p["key"] == key
                       for p in _peers(ns, home))

        wait_for(lambda: found(ns_a, homes[0], f"http://{addr_b}:7400", keys[1]),
                 "the mirror discovers the other node", deadline=60)
        wait_for(lambda: found(ns_b, homes[1], f"http://{addr_a}:7400", keys[0]),
                 "the node discovers the mirror", deadline=60)
        mirror_row = next(p for p in _peers(ns_b, homes[1])
                          if p["url"] == f"http://{addr_a}:7400")
        assert mirror_row["mirror"] is True

        note = tmp_path / "note.md"
        note.write_text("# Found on the LAN\n\nNobody typed an address.\n")
        subprocess.run(_in(ns_b, sys.executable, "-m", "tui", "--home", str(homes[1]), "add",
                           str(note)), check=True, capture_output=True, timeout=60,
                       env=os.environ.copy())

        def synced() -> bool:
            out = subprocess.run(_in(ns_a, sys.executable, "-m", "tui", "--home",
                                     str(homes[0]), "ls", "--json"),
                                 capture_output=True, text=True, timeout=60,
                                 env=os.environ.copy())
            return "Found on the LAN" in out.stdout

        wait_for(synced, "the note reaches the mirror through the discovered address",
                 deadline=60)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_the_peers_screen_marks_discovered_peers() -> None:
    from tui.core import PeerRow

    row = PeerRow.from_info({"url": "http://10.0.0.5:7400", "name": "school", "mirror": True,
                             "source": "discovered", "last_seen": None, "health": 0.5,
                             "sent": 0, "received": 0})
    assert row.cells(now())[1] == "school (mirror) (found on LAN)"
    manual = PeerRow.from_info({"url": "http://10.0.0.6:7400", "name": "x", "source": "manual"})
    assert "LAN" not in manual.cells(now())[1]


def test_a_discovered_address_is_a_candidate_the_policy_can_refuse() -> None:
    from sync.gossip.policy import Policy
    from sync.gossip.session import GossipSession

    session = GossipSession(Policy(block_peers=frozenset({"10.0.0.7"})),
                            own_key=bytes.fromhex(KEY))
    session.load_peers([], bootstrap=[], records=[], now=0)
    assert session.discovered("http://10.0.0.5:7400", key="cd" * 32, name="n", mirror=False,
                              now=1)
    assert not session.discovered("http://10.0.0.5:7400", key="cd" * 32, name="n",
                                  mirror=False, now=2)  # already known: no new notice
    assert not session.discovered("http://10.0.0.9:7400", key=KEY, name="me", mirror=False,
                                  now=3)  # ourselves
    assert not session.discovered("http://10.0.0.7:7400", key="ef" * 32, name="spam",
                                  mirror=True, now=4)  # blocked by the policy
    [peer] = session.table.all()
    assert peer.source == "discovered" and peer.key == "cd" * 32
