"""A newcomer's first commands, run as a person runs them: in real processes.

Names and config, licences, full-text search, and messages that say what happened
and what to do next.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sync_support import Peer, peers_in


def run(*args: str, home: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tui", "--home", str(home), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
    )


def ok(*args: str, home: Path, stdin: str | None = None) -> str:
    result = run(*args, home=home, stdin=stdin)
    assert result.returncode == 0, result.stderr
    return result.stdout


def fails(*args: str, home: Path) -> str:
    result = run(*args, home=home)
    assert result.returncode != 0, result.stdout
    return result.stderr


def note(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    ok("init", "--name", "Ana Lima", home=home)
    return home


def who(home: Path) -> dict[str, str]:
    value: dict[str, str] = json.loads(ok("id", "--json", home=home))
    return value


# -- names and config -----------------------------------------------------------------


def test_init_on_an_existing_home_says_so_and_changes_nothing(home: Path) -> None:
    before = who(home)
    out = ok("init", "--name", "Someone Else", home=home)
    assert "already exists" in out and "nothing was changed" in out
    assert "commons name Someone Else" in out
    assert who(home) == before


def test_name_signs_a_new_profile_and_remembers_it_in_config(home: Path) -> None:
    out = ok("name", "Ana", "Maria", home=home)
    assert "Ana Maria" in out and "was Ana Lima" in out
    assert who(home)["name"] == "Ana Maria"
    config = tomllib.loads((home / "config.toml").read_text())
    assert config["name"] == "Ana Maria"


def test_config_set_and_show_and_flags_override_it(home: Path, tmp_path: Path) -> None:
    ok("config", "set", "licence", "CC-BY-SA-4.0", home=home)
    ok("config", "set", "peers", "http://127.0.0.1:7401, http://127.0.0.1:7402", home=home)
    ok("config", "set", "llm.model", "tiny", home=home)
    config = tomllib.loads((home / "config.toml").read_text())
    assert config["licence"] == "CC-BY-SA-4.0"
    assert config["peers"] == ["http://127.0.0.1:7401", "http://127.0.0.1:7402"]
    assert config["llm"] == {"model": "tiny"}
    shown = json.loads(ok("config", "show", "--json", home=home))["values"]
    assert shown["licence"] == "CC-BY-SA-4.0" and shown["llm.model"] == "tiny"
    assert "licence     = CC-BY-SA-4.0" in ok("config", "show", home=home)

    a = note(tmp_path, "a.md", "# Rain\n\nCollect it.\n")
    b = note(tmp_path, "b.md", "# Snow\n\nMelt it.\n")
    by_config = json.loads(ok("add", str(a), "--json", home=home))[0]
    by_flag = json.loads(ok("add", str(b), "--licence", "CC0-1.0", "--json", home=home))[0]
    assert by_config["licence"] == "CC-BY-SA-4.0" and by_flag["licence"] == "CC0-1.0"

    ok("config", "unset", "licence", home=home)
    assert "licence" not in tomllib.loads((home / "config.toml").read_text())


def test_config_refuses_unknown_keys_and_points_name_elsewhere(home: Path) -> None:
    err = fails("config", "set", "colour", "blue", home=home)
    assert "no setting 'colour'" in err and "licence" in err
    assert "commons name" in fails("config", "set", "name", "Bob", home=home)


# -- licences --------------------------------------------------------------------------


def test_without_a_chosen_licence_a_document_says_not_stated(home: Path, tmp_path: Path) -> None:
    path = note(tmp_path, "manual.md", "# A manual\n\nAll rights reserved.\n")
    result = run("add", str(path), "--json", home=home)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[0]["licence"] == "not stated"
    assert "only your own work" in result.stderr and "--licence" in result.stderr
    shown = ok("show", json.loads(result.stdout)[0]["id"][:12], home=home)
    assert "licence:  not stated" in shown


# -- finding things --------------------------------------------------------------------


def test_search_finds_words_in_bodies_with_snippets(home: Path, tmp_path: Path) -> None:
    text = "# The old well\n\nA tombstone-shaped stone marks the spring.\n"
    path = note(tmp_path, "well.md", text)
    ok("add", str(path), "--tag", "water", home=home)
    out = ok("search", "tombstone", home=home)
    assert "The old well" in out and "[tombstone]" in out
    hits = json.loads(ok("search", "tombstone", "--tag", "water", "--json", home=home))
    assert [h["title"] for h in hits] == ["The old well"]
    assert "[tombstone]" in hits[0]["snippet"] and hits[0]["author_name"] == "Ana Lima"
    assert "#" not in hits[0]["snippet"]  # the heading's words, not its Markdown mark
    assert "no document holds" in ok("search", "zyxwvut", home=home)
    by_prefix = json.loads(ok("search", "tombstone", "--author", "SEEDS", "--json", home=home))
    assert by_prefix and {h["author_name"] for h in by_prefix} == {"commons seeds"}
    assert len(json.loads(ok("ls", "--author", "ana", "--json", home=home))) == 1


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[[str], Peer]]:
    yield from peers_in(tmp_path)


@pytest.mark.slow
def test_search_goes_through_a_running_node(spawn: Callable[[str], Peer]) -> None:
    peer = spawn("ana").start()
    hits = json.loads(ok("search", "tombstone", "--json", home=peer.home))
    assert hits and all("[tombstone" in h["snippet"] for h in hits)
    assert hits[0]["author_name"] == "commons seeds"
    peer.stop()


# -- messages that lead somewhere ------------------------------------------------------


def test_import_of_a_file_that_is_not_a_bundle_stops_early(home: Path, tmp_path: Path) -> None:
    junk = tmp_path / "manual.pdf"
    junk.write_bytes(b"%PDF-1.4\n" + b"\xff\xfe binary stream\n" * 5000)
    result = run("import", str(junk), home=home)
    assert result.returncode == 1
    assert "not a commons bundle (the first 20 lines hold no object" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    text = tmp_path / "notes.txt"
    text.write_text('{"kind": "document", "title": "Unterminated\n' + "plain words\n" * 50)
    result = run("import", str(text), home=home)
    assert "at at" not in result.stderr and len(result.stderr.splitlines()) <= 22


def test_add_dir_says_to_recurse_then_adds_readable_files(home: Path, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    note(docs, "a.md", "# A\n\nalpha\n")
    note(docs, "sub/b.txt", "bravo\n")
    (docs / "photo.jpg").write_bytes(b"\xff\xd8\xff")
    err = fails("add", str(docs), home=home)
    assert "--recursive" in err and "2 files" in err and "without a suffix" not in err
    result = run("add", "-r", str(docs), "--json", home=home)
    assert result.returncode == 0, result.stderr
    assert sorted(d["title"] for d in json.loads(result.stdout)) == ["A", "bravo"]
    assert "skipping 1 file that cannot be read (photo.jpg)" in result.stderr


def test_latin1_text_is_read_and_says_what_was_assumed(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "recette.txt"
    path.write_bytes("Crème brûlée: très bonne qualité, à l'école.\n".encode("latin-1"))
    result = run("add", str(path), "--json", home=home)
    assert result.returncode == 0, result.stderr
    assert "not UTF-8; read it as cp1252" in result.stderr
    assert json.loads(result.stdout)[0]["title"].startswith("Crème brûlée")


def test_show_says_who_retracted_and_which_version_replaced(home: Path, tmp_path: Path) -> None:
    v1 = json.loads(ok("add", str(note(tmp_path, "v1.md", "# Wells\n\nv1\n")), "--json",
                       home=home))[0]["id"]
    v2 = json.loads(ok("add", str(note(tmp_path, "v2.md", "# Wells\n\nv2\n")), "--replaces",
                       v1[:12], "--json", home=home))[0]["id"]
    out = ok("show", v1[:12], home=home)
    assert f"{v2[:12]} replaces it" in out
    ok("retract", v2[:12], "--reason", "wrong depth", home=home)
    err = fails("show", v2[:12], home=home)
    assert "was retracted by Ana Lima" in err and "wrong depth" in err
    assert "no object with an id" not in err


def test_bad_tags_are_refused_before_the_duplicate_check(home: Path, tmp_path: Path) -> None:
    path = note(tmp_path, "a.md", "# Rain\n\nCollect it.\n")
    ok("add", str(path), home=home)
    err = fails("add", str(path), "--tag", "Bad Tag", home=home)
    assert "'bad tag'" in err and "--tag twice" in err
    result = run("add", str(path), "--tag", "rain", home=home)
    assert result.returncode == 0 and result.stdout.startswith("duplicate")
    assert "--replaces" in result.stderr and "new version" in result.stderr


def test_an_answers_quotes_leave_out_heading_marks() -> None:
    from commons.cli.ask import format_answer

    cited = {"n": 1, "title": "Drying mangoes", "author": "ab" * 32, "author_name": "Ana",
             "id": "cd" * 32, "origin": "local", "verified": True,
             "passage": "# Drying mangoes\n\nSlice ripe mangoes thin.\n\n## Storing\n\nKeep dry."}
    text = format_answer({"answer": "Slice ripe mangoes thin. [1]", "abstained": False,
                          "citations": [cited]})
    assert "“Drying mangoes Slice ripe mangoes thin. Storing Keep dry.”" in text
