"""Chunking: passages are spans of the body, cut at pages, headings, paragraphs, sentences."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from commons.search.chunking import (
    MAX_CHARS,
    chunk_text,
    embedding_text,
    sentence_spans,
    split_sentences,
)


def covered(body: str, chunks: list) -> set[int]:
    return {i for c in chunks for i in range(c.start, c.end)}


def test_short_document_is_one_passage_with_no_page() -> None:
    body = "# Wells\n\nBoil water from a shallow well before drinking it."
    [chunk] = chunk_text(body)
    assert (chunk.start, chunk.end, chunk.page, chunk.position) == (0, len(body), None, 0)
    assert chunk.text == body


def test_a_heading_starts_a_new_passage_once_the_current_one_is_long_enough() -> None:
    intro = "Intro sentence number one is here. " * 12
    body = f"# Guide\n\n{intro.strip()}\n\n## Second part\n\nThe second part says one thing."
    chunks = chunk_text(body)
    assert len(chunks) == 2
    assert chunks[1].text.startswith("## Second part")
    assert chunks[0].text.startswith("# Guide")


def test_a_heading_is_never_left_alone_at_the_end_of_a_passage() -> None:
    first = "A first paragraph that is long enough to stand on its own. " * 6
    long_para = "word " * 190 + "end."
    body = f"{first.strip()}\n\n## Steps\n\n{long_para}"
    chunks = chunk_text(body)
    assert all(c.text.strip() != "## Steps" for c in chunks)
    assert any(c.text.startswith("## Steps\n\nword") for c in chunks)


def test_long_paragraphs_are_cut_at_sentences_with_a_small_overlap() -> None:
    sentences = [f"Sentence {i} tells about irrigation channel number {i}." for i in range(80)]
    body = " ".join(sentences)
    chunks = chunk_text(body)
    assert len(chunks) > 2
    for c in chunks:
        assert len(c.text) <= MAX_CHARS
        assert c.text.startswith("Sentence") and c.text.endswith(".")
    # consecutive passages share their boundary sentence
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert b.start < a.end
        assert a.text.endswith(body[b.start : a.end])


def test_text_without_sentence_ends_is_cut_at_spaces() -> None:
    body = " ".join(f"w{i}" for i in range(1500))
    chunks = chunk_text(body)
    assert len(chunks) > 1
    assert all(len(c.text) <= MAX_CHARS for c in chunks)
    assert all(not c.text.startswith(" ") and not c.text.endswith(" ") for c in chunks)
    assert covered(body, chunks) >= {i for i, ch in enumerate(body) if not ch.isspace()}


def test_pages_are_numbered_from_form_feeds_and_never_shared() -> None:
    body = "First page text.\fSecond page text.\f\fFourth page, after a blank one."
    chunks = chunk_text(body)
    assert [(c.page, c.text) for c in chunks] == [
        (1, "First page text."),
        (2, "Second page text."),
        (4, "Fourth page, after a blank one."),
    ]


def test_empty_and_blank_bodies_make_no_passages() -> None:
    assert chunk_text("") == []
    assert chunk_text(" \n\n \f ") == []


def test_sentences_skip_headings_and_split_list_items() -> None:
    text = (
        "## How to start\n\n1. **Install it.** Then run `commons init`.\n"
        "2. Add a peer\n- a bullet without a full stop\n\nA closing line (really.) Done."
    )
    got = [text[s:e] for s, e in sentence_spans(text)]
    assert got == [
        "**Install it.**",
        "Then run `commons init`.",
        "Add a peer",
        "a bullet without a full stop",
        "A closing line (really.)",
        "Done.",
    ]


def test_closing_quotes_stay_with_their_sentence() -> None:
    text = 'She said "boil it first." Then she left.'
    assert [text[s:e] for s, e in split_sentences(text)] == [
        'She said "boil it first."',
        "Then she left.",
    ]


def test_embedding_text_adds_the_title_once() -> None:
    assert embedding_text("Wells", "Boil the water.") == "Wells\nBoil the water."
    assert embedding_text("Wells", "# Wells\n\nBoil.") == "# Wells\n\nBoil."


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(alphabet="abc de.!?\n#-*1", min_size=0, max_size=300),
            st.sampled_from(["\n\n", "\f", "\n## Heading\n", ". ", "- item\n"]),
        ),
        max_size=40,
    )
)
def test_passages_are_exact_ordered_spans_covering_all_text(parts: list[str]) -> None:
    body = "".join(parts)
    chunks = chunk_text(body, max_chars=200, min_chars=60, overlap_chars=40)
    for i, c in enumerate(chunks):
        assert c.position == i
        assert c.text == body[c.start : c.end] and c.text.strip() == c.text and c.text
        assert "\f" not in c.text
    starts = [c.start for c in chunks]
    assert starts == sorted(starts)
    assert covered(body, chunks) >= {
        i for i, ch in enumerate(body) if not ch.isspace()
    }
