"""The foundation's commands, run as a person runs them: in a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from commons.model.errors import HomeLocked, IdentityError
from commons.model.identity import Identity
from commons.service import Commons
from commons.storage.home import HomePaths


def run(
    *args: str, home: Path | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "tui"]
    if home is not None:
        argv += ["--home", str(home)]
    return subprocess.run(
        [*argv, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
    )


def ok(*args: str, home: Path | None = None, stdin: str | None = None) -> str:
    result = run(*args, home=home, stdin=stdin)
    assert result.returncode == 0, result.stderr
    return result.stdout


def db_bytes(home: Path) -> bytes:
    return b"".join(
        p.read_bytes() for p in sorted(home.glob("commons.db*")) if not p.name.endswith("-shm")
    )


@pytest.mark.slow
def test_add_export_import_carries_the_same_signed_document(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    notes = tmp_path / "notes.md"
    notes.write_text("# Rainwater tanks\n\nClean the gutters before the rains.\n")
    ok("init", "--name", "ana", home=a)
    ok("add", str(notes), "--tag", "Water", "--tag", "village", home=a)
    listed = json.loads(ok("ls", "--json", "--tag", "water", home=a))
    assert [d["title"] for d in listed] == ["Rainwater tanks"]
    assert listed[0]["tags"] == ["village", "water"] and listed[0]["author_name"] == "ana"
    bundle = tmp_path / "b.jsonl"
    ok("export", str(bundle), home=a)
    ok("init", "--name", "ben", home=b)
    out = ok("import", str(bundle), home=b)
    assert "refused 0" in out
    mine = json.loads(ok("show", listed[0]["id"][:10], "--json", home=a))[0]
    theirs = json.loads(ok("show", listed[0]["id"][:10], "--json", home=b))[0]
    assert theirs["object"] == mine["object"]
    assert theirs["object"]["sig"] == mine["object"]["sig"]
    assert theirs["origin"] == "import:b.jsonl"
    # Every line of the bundle is a canonical, self-describing object.
    lines = bundle.read_text().splitlines()
    assert all(json.loads(line)["id"] for line in lines)


def test_fresh_home_holds_the_seed_documents_and_an_identity(tmp_path: Path) -> None:
    home = tmp_path / "h"
    ok("init", home=home)
    who = json.loads(ok("id", "--json", home=home))
    assert len(who["public_key"]) == 64 and who["home"] == str(home)
    assert (home / "identity.key").stat().st_mode & 0o777 == 0o600
    docs = json.loads(ok("ls", "--json", home=home))
    assert len(docs) >= 8
    assert {d["author_name"] for d in docs} == {"commons seeds"}


@pytest.mark.slow
def test_add_from_stdin_and_duplicates_are_stored_once(tmp_path: Path) -> None:
    home = tmp_path / "h"
    ok("init", home=home)
    first = json.loads(
        ok("add", "-", "--title", "Pasted", "--json", home=home, stdin="Some text.\n")
    )
    again = json.loads(
        ok("add", "-", "--title", "Pasted", "--json", home=home, stdin="Some text.\n")
    )
    assert first[0]["status"] == "added" and again[0]["status"] == "duplicate"
    assert first[0]["id"] == again[0]["id"]


@pytest.mark.slow
def test_retract_only_own_objects(tmp_path: Path) -> None:
    home = tmp_path / "h"
    ok("init", home=home)
    seed = json.loads(ok("ls", "--json", home=home))[0]
    result = run("retract", seed["id"][:12], home=home)
    assert result.returncode == 1
    assert "only its author can retract" in result.stderr
    added = json.loads(ok("add", "-", "--title", "Mine", "--json", home=home, stdin="x\n"))[0]
    ok("retract", added["id"][:12], home=home)
    assert added["id"] not in ok("ls", "--json", home=home)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("ls",), "no commons home"),
        (("show", "abcdef12"), "no commons home"),
    ],
)
def test_missing_home_says_how_to_create_one(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    result = run(*args, home=tmp_path / "nowhere")
    assert result.returncode == 1
    assert message in result.stderr and "init" in result.stderr
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.slow
def test_bad_add_inputs_add_nothing(tmp_path: Path) -> None:
    home = tmp_path / "h"
    ok("init", home=home)
    before = db_bytes(home)
    unreadable = tmp_path / "secret.md"
    unreadable.write_text("# x\n")
    unreadable.chmod(0o000)
    binary = tmp_path / "blob.txt"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    good = tmp_path / "good.md"
    good.write_text("# fine\n")
    cases = [
        ([str(tmp_path / "missing.md")], "does not exist"),
        ([str(binary)], "not UTF-8"),
        ([str(tmp_path / "image.png")], "cannot read .png"),
        ([str(tmp_path)], "--recursive"),  # a directory: how to add what is under it
        ([str(good), str(binary)], "not UTF-8"),
    ]
    if os.geteuid() != 0:  # root reads any file, whatever its mode
        cases.append(([str(unreadable)], "permission denied"))
    for paths, message in cases:
        result = run("add", *paths, home=home)
        assert result.returncode == 1, paths
        assert message in result.stderr, result.stderr
    assert db_bytes(home) == before


@pytest.mark.slow
def test_import_of_a_damaged_bundle_keeps_the_good_objects(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    ok("init", "--name", "ana", home=a)
    for n in range(3):
        ok("add", "-", "--title", f"doc {n}", home=a, stdin=f"text {n}\n")
    bundle = tmp_path / "b.jsonl"
    ok("export", str(bundle), home=a)
    lines = bundle.read_bytes().splitlines()
    doc1 = next(line for line in lines if b'"title":"doc 1"' in line)
    doc2 = next(line for line in lines if b'"title":"doc 2"' in line)
    tampered = bytearray(doc1)
    tampered[tampered.index(b'"title":"doc 1"') + 13] ^= 0x02
    rest = [line for line in lines if line not in (doc1, doc2)]
    damaged = [*rest, bytes(tampered), b"not json at all", doc2[: len(doc2) // 2]]
    bundle.write_bytes(b"\n".join(damaged) + b"\n")
    ok("init", home=b)
    result = run("import", str(bundle), "--json", home=b)
    assert result.returncode == 2
    report = json.loads(result.stdout)
    assert report["refused"] == 3
    # The seed objects are already in every home: they come back as duplicates.
    assert report["accepted"] + report["duplicate"] == len(lines) - 2
    assert report["accepted"] == 2  # ana's profile and "doc 0"
    reasons = " ".join(r["reason"] for r in report["reasons"])
    assert "does not match" in reasons and "not valid JSON" in reasons
    titles = {d["title"] for d in json.loads(ok("ls", "--json", "--author", "ana", home=b))}
    assert titles == {"doc 0"}


def test_import_of_garbage_file_refuses_everything_and_changes_nothing(tmp_path: Path) -> None:
    home = tmp_path / "h"
    ok("init", home=home)
    garbage = tmp_path / "g.jsonl"
    garbage.write_bytes(os.urandom(4096).replace(b"{", b"x"))
    before = db_bytes(home)
    result = run("import", str(garbage), home=home)
    assert result.returncode == 1 and "not a commons bundle" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert db_bytes(home) == before


def test_second_writer_is_told_who_owns_the_home(tmp_path: Path) -> None:
    paths = HomePaths(tmp_path / "h")
    with Commons.init(paths, clock=lambda: 1_800_000_000):
        result = run("add", "-", "--title", "t", home=paths.root, stdin="x\n")
        assert result.returncode == 1
        assert f"in use by process {os.getpid()}" in result.stderr
        with pytest.raises(HomeLocked) as info:
            Commons(paths, clock=lambda: 1_800_000_000)
        assert info.value.pid == os.getpid()
    # Once the owner is gone, the home opens again.
    Commons(paths, clock=lambda: 1_800_000_000).close()


def test_secret_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "h"
    ok("init", home=home)
    (home / "identity.key").chmod(0o644)
    result = run("id", home=home)
    assert result.returncode == 1 and "chmod 600" in result.stderr
    with pytest.raises(IdentityError, match="readable|read by other"):
        Identity.load(home / "identity.key")


@pytest.mark.slow
def test_help_on_every_command() -> None:
    for command in ("init", "id", "add", "ls", "show", "retract", "export", "import"):
        assert "usage: commons " + command in ok(command, "--help")
