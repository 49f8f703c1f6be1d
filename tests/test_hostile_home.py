"""Adversarial suite, a damaged home (F10): one clear line, `check`, `check --salvage`,
and `block`/`unblock`/`blocked` from the command line (F8). Real CLI processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from commons.model.identity import Identity
from commons.model.objects import Document, sign
from commons.service import Commons
from commons.storage.home import HomePaths

NOW = int(time.time()) - 100  # the CLI checks times against the real clock
MALLORY = Identity(bytes(range(64, 96)))


def run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tui", "--home", str(home), *args],
                          capture_output=True, text=True, timeout=120, env=os.environ.copy())


def make_home(root: Path) -> Path:
    home = root / "home"
    with Commons.init(HomePaths(home), clock=lambda: NOW, name="me") as commons:
        spam = Document(author=MALLORY.public_key, created_at=NOW - 5, title="Cheap watches",
                        body="Buy cheap watches.")
        commons.store.put(sign(spam, MALLORY), now=NOW, origin="test")
    return home


def test_check_finds_a_rotten_object_and_salvage_saves_the_rest(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    with Commons(HomePaths(home), clock=lambda: NOW) as commons:
        total = commons.store.count()
        (victim,) = [s.obj for s in commons.store.objects(author=MALLORY.public_key)]
        with commons.store.transaction() as db:
            db.execute("UPDATE objects SET raw = ? WHERE id = ?",
                       (victim.to_bytes().replace(b"cheap", b"cheep"), victim.id))
    clean = run(home, "check", "--json")
    report = json.loads(clean.stdout)
    assert clean.returncode == 1 and report["verified"] == total - 1
    assert report["bad"][0]["id"] == victim.id.hex()
    out = tmp_path / "saved.jsonl"
    salvaged = run(home, "check", "--salvage", str(out))
    assert "saved" in salvaged.stdout and len(out.read_bytes().splitlines()) == total - 1
    fresh = tmp_path / "fresh"
    assert run(fresh, "init").returncode == 0
    imported = run(fresh, "import", str(out), "--json")
    assert json.loads(imported.stdout)["refused"] == 0


def test_a_damaged_database_page_gives_one_clear_line(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    db = HomePaths(home).db
    data = bytearray(db.read_bytes())
    for offset in range(4096 * 2, 4096 * 3):  # wreck the third page
        data[offset] ^= 0xFF
    db.write_bytes(bytes(data))
    listed = run(home, "ls")
    assert listed.returncode != 0 and "Traceback" not in listed.stderr
    assert len(listed.stderr.strip().splitlines()) == 1
    assert "check --salvage" in listed.stderr
    checked = run(home, "check")
    assert checked.returncode == 1 and "Traceback" not in checked.stderr


def test_block_unblock_and_blocked_from_the_command_line(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    key = MALLORY.public_key.hex()
    assert "Cheap watches" in run(home, "ls").stdout
    blocked = run(home, "block", key, "--reason", "spam")
    assert blocked.returncode == 0 and "blocked" in blocked.stdout
    assert "Cheap watches" not in run(home, "ls").stdout
    listed = json.loads(run(home, "blocked", "--json").stdout)
    assert [(b["author"], b["reason"]) for b in listed] == [(key, "spam")]
    assert run(home, "unblock", key).returncode == 0
    assert "Cheap watches" in run(home, "ls").stdout
    again = run(home, "unblock", key)
    assert again.returncode != 0 and "not blocked" in again.stderr
    mine = run(home, "block", "me")
    assert mine.returncode != 0 and "yourself" in mine.stderr
