"""The app's headless core: view models and formatting, tested without textual."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sync.display import peer_state
from tui.core import (
    ABSTAIN_TEXT,
    AnswerView,
    DocRow,
    History,
    LibraryFilter,
    PeerRow,
    author_cell,
    blocks,
    complete_path,
    excerpt,
    filter_rows,
    fmt_ago,
    format_event,
    index_progress,
    library_columns,
    locate_passage,
    matches,
    origin_label,
    origin_short,
    parse_filter,
    parse_tags,
    segments,
    sync_summary,
)

HEADLESS = ("tui.core", "tui.backend", "tui.form", "tui.history")


@pytest.mark.parametrize("module", HEADLESS)
def test_headless_modules_do_not_import_textual(module: str) -> None:
    code = (
        "import sys, importlib\n"
        f"importlib.import_module({module!r})\n"
        "loaded = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))\n"
        "print(','.join(loaded))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        cwd=Path(__file__).parent.parent,
    )
    assert out.stdout.strip() == "", f"{module} imported {out.stdout.strip()}"


def row(**kw: object) -> DocRow:
    base: dict[str, object] = {
        "id": "ab" * 32, "title": "Cleaning a sand filter", "author": "cd" * 32,
        "author_name": "Amara", "tags": ["water", "how-to"], "created_at": 1_800_000_000,
        "origin": "local", "received_at": 1_800_000_000,
    }
    base.update(kw)
    return DocRow.from_json(base)


def test_filter_words_author_and_tag() -> None:
    r = row()
    assert parse_filter("sand author:amara #water") == LibraryFilter(("sand",), "amara", "water")
    assert parse_filter("tag:Water", author="x").tag == "water"
    assert matches(r, parse_filter("SAND filter"))
    assert matches(r, parse_filter("author:cdcdcdcd"))
    assert matches(r, parse_filter("by:AMARA"))
    assert not matches(r, parse_filter("author:bob"))
    assert not matches(r, parse_filter("tag:health"))
    assert not matches(r, parse_filter("pump"))
    other = row(id="ef" * 32, title="Pumps", tags=[], author_name=None)
    assert filter_rows([r, other], parse_filter("tag:water")) == [r]
    assert filter_rows([r, other], parse_filter("")) == [r, other]


def test_filter_by_prefix_any_case_quoted_names_and_text_hits() -> None:
    r = row(author_name="river library", tags=["gossip", "water"])
    assert parse_filter('author:"river lib" "two words"') == LibraryFilter(
        ("two words",), "river lib", None
    )
    assert matches(r, parse_filter("author:RIV"))
    assert matches(r, parse_filter("author:library"))  # a later word of the name
    assert matches(r, parse_filter('author:"River Library"'))
    assert matches(r, parse_filter("tag:goss"))
    assert not matches(r, parse_filter("tag:ossip"))
    assert not matches(r, parse_filter("tombstone"))
    assert matches(r, parse_filter("tombstone"), frozenset([r.id]))  # found in its text


def test_labels() -> None:
    assert origin_label("local") == "added here"
    assert origin_label("import:stick.jsonl") == "import stick.jsonl"
    assert origin_label("http://10.0.0.5:7400") == "from 10.0.0.5:7400"
    assert origin_short("http://10.0.0.5:7400") == "10.0.0.5"
    assert author_cell("cd" * 32, "Amara at Hillside School", 15) == "Amara a… cdcdcd"
    assert author_cell("cd" * 32, None, 24) == "? cdcdcdcd"
    assert excerpt("## Heading\n\n- **bold** `code`", 80) == "Heading bold code"
    assert fmt_ago(None, 100) == "never"
    assert fmt_ago(40, 100) == "1m ago"
    assert fmt_ago(99.5, 100) == "just now"


@pytest.mark.parametrize("width", [80, 100, 120, 200])
def test_library_columns_fit_the_terminal(width: int) -> None:
    columns = library_columns(width)
    used = sum(c.width + 2 for c in columns) + 1
    assert used <= width
    assert columns[1].key == "title" and columns[1].width >= 20


BODY = """# Title

First paragraph.

```
code

still code
```

Second paragraph, which is cited.
It has two lines.

Last paragraph."""


def test_blocks_keep_code_fences_whole() -> None:
    spans = [BODY[s:e].strip() for s, e in blocks(BODY)]
    assert spans[2] == "```\ncode\n\nstill code\n```"
    assert len(spans) == 5


def test_segments_widen_the_cited_passage_to_paragraphs() -> None:
    start = BODY.index("which is cited")
    parts = segments(BODY, (start, start + 10))
    assert [p.cited for p in parts] == [False, True, False]
    assert parts[1].text.strip() == "Second paragraph, which is cited.\nIt has two lines."
    assert "".join(p.text for p in parts) == BODY
    assert segments(BODY, None)[0].text == BODY
    assert [p.cited for p in segments(BODY, (0, 3))] == [True, False]


def test_locate_passage_tolerates_different_whitespace() -> None:
    first = BODY.index("First")
    assert locate_passage(BODY, "First paragraph.") == (first, first + 16)
    found = locate_passage(BODY, "Second   paragraph, which is cited. It has")
    assert found is not None and found[0] == BODY.index("Second")
    assert locate_passage(BODY, "not there at all") is None


def test_answers_and_history() -> None:
    data = {
        "answer": "Scrape the top layer. [1]",
        "citations": [{"n": 1, "id": "ab" * 32, "title": "Filters", "author": "cd" * 32,
                       "author_name": None, "origin": "seed", "passage": "Scrape it.",
                       "score": 0.5, "page": 3, "start": 10, "end": 20}],
        "abstained": False,
    }
    answer = AnswerView.from_json("how?", data)
    c = answer.citation(1)
    assert c is not None and c.span == (10, 20)
    assert c.label == "[1] Filters, p. 3 — ? (cdcdcdcd) · seed"
    assert answer.citation(2) is None
    nothing = AnswerView.from_json("why?", {"answer": "", "citations": [], "abstained": True})
    assert nothing.abstained and ABSTAIN_TEXT in nothing.text
    history = History()
    history.add(answer)
    history.add(nothing)
    history.add(answer)
    assert [a.question for a in history.answers] == ["how?", "why?"]


def test_tags() -> None:
    # Peer addresses typed in the Peers screen are checked by sync's normalise_url
    # (tests/test_peers.py).
    assert parse_tags("Water, how-to water  health") == ["water", "how-to", "health"]


def test_complete_path(tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "filter.md").write_text("x")
    (tmp_path / "notes" / "filler.txt").write_text("x")
    (tmp_path / "notes" / ".hidden.md").write_text("x")
    base = str(tmp_path) + "/"
    assert complete_path(base + "no") == base + "notes/"
    assert complete_path(base + "notes/f") == base + "notes/fil"
    assert complete_path(base + "notes/filt") == base + "notes/filter.md"
    assert complete_path(base + "notes/filter.md") is None
    assert complete_path(base + "missing/x") is None


def test_peer_rows_events_and_sync_summaries() -> None:
    peer = PeerRow.from_info({"url": "http://a:1", "name": "river", "last_seen": 40,
                              "health": 0.65, "sent": 3, "received": 5, "mirror": True})
    assert peer.cells(100) == ["http://a:1", "river (mirror)", "1m ago", "ok", "3", "5"]
    # The same words as `commons peers ls`, never a percentage.
    states = {"never": ({"last_seen": None, "failures": 0}, "not reached yet"),
              "once": ({"last_seen": 40, "failures": 1}, "failing: 1 try in a row"),
              "often": ({"last_seen": None, "failures": 4}, "failing: 4 tries in a row"),
              "bad": ({"state": "dropped", "faults": 3, "failures": 0}, "dropped: 3 bad objects")}
    for fields, words in states.values():
        row = PeerRow.from_info({"url": "http://b:2", "health": 0.2, **fields})
        assert row.state == words == peer_state({"state": "active", **fields})
        assert "%" not in " ".join(row.cells(100))

    class Event:
        time, kind, message, peer = 0, "sync", "http://a:1: fetched 3", "http://a:1"

    assert format_event(Event()) == "00:00:00 sync     http://a:1: fetched 3"
    assert sync_summary([]).startswith("no peer is due")
    assert sync_summary([{"fetched": 2, "pushed": 1, "error": None},
                         {"fetched": 0, "pushed": 0, "error": "timeout"}]) == (
        "synced with 2 peers: 2 fetched, 1 pushed, 1 failed (see the gossip log)"
    )


def test_the_index_line_says_how_far_and_how_long() -> None:
    def line(dense: dict[str, object] | None, index: str = "ready") -> str:
        return index_progress({"index": index, "dense_index": dense})

    assert line({"documents": 342, "dense": 120, "complete": False, "rate": 14.0}) == (
        "dense index: 120 of 342 documents, 14/s, about 16 s left")
    assert line({"documents": 5000, "dense": 200, "complete": False, "rate": 12.5}) == (
        "dense index: 200 of 5000 documents, 12.5/s, about 6 min left")
    assert line({"documents": 90000, "dense": 0, "complete": False, "rate": 10}) == (
        "dense index: 0 of 90000 documents, 10/s, about 2 h 30 min left")
    assert line({"documents": 342, "dense": 3, "complete": False, "rate": 0.0}) == (
        "dense index: 3 of 342 documents, starting")
    assert line({"documents": 342, "dense": 342, "complete": True, "rate": 2.0}) == (
        "dense index: 342 documents")
    assert line(None, "warming").startswith("search index: opening")
    assert line(None, "failed").startswith("search index: did not open")


def test_an_answer_is_shown_as_its_words_never_as_markup() -> None:
    """The answer's sentences are a stranger's: in the Markdown view they must not turn
    into a link, bold, HTML, a heading or a list. Our own notes may be italic."""
    from markdown_it import MarkdownIt

    hostile = ("5. Visit [the bank](http://bank.example) **now**, <b>or</b> `run this` [1]."
               " # Not a heading")
    data = {
        "answer": hostile,
        "citations": [{"n": 1, "id": "ab" * 32, "title": "T", "author": "cd" * 32,
                       "author_name": None, "origin": "seed", "passage": "P"}],
        "abstained": False,
        "model": "tiny_model*",
        "set_aside": None,
    }
    view = AnswerView.from_json("q", data)
    html = MarkdownIt("commonmark").render(view.text)
    for active in ("<a ", "<strong>", "<b>", "<ol", "<h1"):
        assert active not in html, html
    assert "[the bank](http://bank.example) **now**, &lt;b&gt;or&lt;/b&gt;" in html
    assert "<code>run this</code>" in html  # a code span is inert: commands stay readable
    assert "Written by the language model tiny_model* from these sources" in html
    aside = AnswerView.from_json("q", {**data, "model": None,
                                       "set_aside": {"model": "m", "reason": "it looped"}})
    assert "its answer was set aside: it looped" in MarkdownIt("commonmark").render(aside.text)
