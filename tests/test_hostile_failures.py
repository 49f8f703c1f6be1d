"""F10 (unclear failures): homes this user cannot write, a full disk, a vanished index.

Each gets one clear line and a way out, never a traceback; a node keeps
running and loses nothing it stored. Permissions do not bind root, so the
commands run as the unprivileged user 65534 (setpriv); read-only disks and
full disks are made in a private mount namespace (unshare). Tests that need
either skip, saying why, where they cannot have it. Every wait is bounded.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sync_support import Peer, add_file, free_port, now, peers_in, wait_for

from commons.model.identity import Identity
from commons.model.objects import Document, sign
from commons.service import Commons
from commons.storage.home import HomePaths
from sync.protocol.auth import sign_request
from sync.protocol.messages import FetchRequest

NOBODY = 65534
PYTHON = sys.executable
CHECKOUT = str(Path(__file__).resolve().parent.parent)


def _can(argv: list[str]) -> bool:
    try:
        return subprocess.run(argv, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="running a command as another user needs root and setpriv")
needs_namespace = pytest.mark.skipif(
    os.geteuid() != 0 or not _can(["unshare", "-m", "true"]),
    reason="a private mount namespace (unshare -m) needs root and a kernel that allows it")


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory every user may enter (pytest's tmp_path is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="commons-f10-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def commons_as(user: int | None, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    prefix = [] if user is None else [
        "setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"]
    env = {**os.environ, "PYTHONPATH": CHECKOUT, "HOME": "/tmp"}
    return subprocess.run([*prefix, PYTHON, "-m", "tui", "--home", str(home), *args],
                          capture_output=True, text=True, timeout=120, env=env, cwd="/tmp")


def one_clear_line(result: subprocess.CompletedProcess[str], *words: str) -> str:
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("commons: "), result.stderr
    for word in words:
        assert word in line, line
    return line


def make_home(parent: Path, name: str = "home") -> Path:
    home = parent / name
    with Commons.init(HomePaths(home), clock=now, name=name):
        pass
    return home


@needs_root
def test_a_home_of_another_user_gives_one_clear_line(shared_dir: Path) -> None:
    home = make_home(shared_dir)  # root's, mode 0700
    note = shared_dir / "note.md"
    note.write_text("# Note\n\nA note.\n")
    note.chmod(0o644)
    for args in (("ls",), ("id",), ("ask", "water"), ("add", str(note))):
        line = one_clear_line(commons_as(NOBODY, home, *args), "belongs to root")
        assert "--home DIR init" in line  # the way out
    (shared_dir / "root-only").mkdir(mode=0o700)
    result = commons_as(NOBODY, shared_dir / "root-only" / "new", "init")  # cannot create it
    one_clear_line(result, "cannot create the home")


@needs_root
def test_a_read_only_home_gives_one_clear_line_and_check_still_reads_it(
    shared_dir: Path,
) -> None:
    home = make_home(shared_dir)
    subprocess.run(["chown", "-R", f"{NOBODY}:{NOBODY}", str(home)], check=True, timeout=30)
    subprocess.run(["chmod", "-R", "a-w", str(home)], check=True, timeout=30)
    for args in (("ls",), ("id",), ("serve",)):
        one_clear_line(commons_as(NOBODY, home, *args), "is read-only here", "chmod")
    out = shared_dir / "out"
    out.mkdir(mode=0o777)
    out.chmod(0o777)
    result = commons_as(NOBODY, home, "check", "--salvage", str(out / "saved.bundle"))
    assert result.returncode == 0, result.stderr
    assert "saved" in result.stdout and (out / "saved.bundle").stat().st_size > 0
    # Saving to a place this user cannot write is one line too.
    one_clear_line(commons_as(NOBODY, home, "check", "--salvage", str(shared_dir / "x.bundle")),
                   "Permission denied", "choose a place you can write to")


@needs_namespace
def test_a_home_on_a_read_only_disk_gives_one_clear_line(shared_dir: Path) -> None:
    home = make_home(shared_dir)
    script = (f"mount --bind {home} {home} && mount -o remount,bind,ro {home}"
              f" && exec {PYTHON} -m tui --home {home} ls")
    env = {**os.environ, "PYTHONPATH": CHECKOUT}
    result = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True,
                            text=True, timeout=120, env=env)
    one_clear_line(result, "is read-only here", "Read-only file system")


# -- a full disk under a running node ---------------------------------------------


WRITER = Identity(bytes(range(50, 82)))


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.mark.slow
@needs_namespace
def test_a_full_disk_during_a_push_is_a_503_with_a_reason_and_loses_nothing(
    shared_dir: Path,
) -> None:
    disk = shared_dir / "disk"
    disk.mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    script = (f"mount -t tmpfs -o size=6m tmpfs {disk}"
              f" && {PYTHON} -m tui --home {disk}/h init --name full"
              f" && exec {PYTHON} -m tui --home {disk}/h serve --listen 127.0.0.1:{port}"
              " --interval 3600 --no-discovery")
    log = shared_dir / "node.log"
    with open(log, "wb") as out:
        node = subprocess.Popen(["unshare", "-m", "sh", "-c", script], stdout=out, stderr=out,
                                env={**os.environ, "PYTHONPATH": CHECKOUT})
    try:
        wait_for(lambda: urllib.request.urlopen(url + "/status", timeout=5).status == 200,
                 "the node on the small disk answers")
        receiver = bytes.fromhex(json.loads(urllib.request.urlopen(url + "/status").read())
                                 ["public_key"])
        stored: list[bytes] = []
        status, reply = 0, b""
        started = time.monotonic()
        for n in range(60):  # about 320 kB a push; the disk has a few MB free
            docs = [sign(Document(author=WRITER.public_key, created_at=now() - 60,
                                  title=f"Long notes {n}.{i}",
                                  body=" ".join(f"word{n}x{i}x{k}" for k in range(1500))),
                         WRITER) for i in range(20)]
            body = b"".join(d.to_bytes() + b"\n" for d in docs)
            status, reply = _post(url + "/sync/push", body, sign_request(
                WRITER, "POST", "/sync/push", body, at=now(), receiver=receiver))
            if status != 200:
                break
            if json.loads(reply)["accepted"] == len(docs):
                stored += [d.id for d in docs]
            assert time.monotonic() - started < 240, "the disk never filled"
        assert status == 503, (status, reply)
        assert "this node's disk is full" in reply.decode(), reply  # ours, not the pusher's
        # The node keeps running, says how it is, and serves everything it stored.
        assert json.loads(urllib.request.urlopen(url + "/status", timeout=30).read())["protocol"]
        assert stored, "no push was stored before the disk filled"
        served = 0
        for start in range(0, len(stored), 200):
            status, lines = _post(url + "/sync/fetch",
                                  FetchRequest(tuple(stored[start:start + 200])).to_wire(), {})
            assert status == 200
            served += len(lines.strip().splitlines())
        assert served == len(stored)
        assert node.poll() is None
    finally:
        node.terminate()
        try:
            node.wait(timeout=30)
        except subprocess.TimeoutExpired:
            node.kill()
            node.wait()


# -- index/ deleted while a node runs ----------------------------------------------


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[[str], Peer]]:
    yield from peers_in(tmp_path)


@pytest.mark.slow
def test_deleting_the_index_while_a_node_runs_rebuilds_it(
    spawn: Callable[[str], Peer], tmp_path: Path,
) -> None:
    node = spawn("node").start()
    add_file(node, tmp_path, "Before", "Stored before the index went away.")
    shutil.rmtree(HomePaths(node.home).index)
    oid = add_file(node, tmp_path, "After", "Stored after the index went away.")
    assert oid and "After" in node.titles()
    state = wait_for(lambda: (s := node.status()["dense_index"]) and s["complete"] and s,
                     "the index was rebuilt, vectors and all")
    assert state["documents"] == node.status()["documents"]
    assert HomePaths(node.home).index.is_dir()
    assert "rebuilding the search index" in node.log.read_text()
