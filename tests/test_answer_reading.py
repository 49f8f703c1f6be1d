"""What the answerer reads: a relevant document whole, where in it a sentence stands,
and what only says how a study was done."""

from __future__ import annotations

from dataclasses import replace

import pytest

from commons.answers.extractive import ExtractiveAnswerer, Source, is_claim, tuning_for
from commons.answers.sentences import Kind, pieces
from commons.search.chunking import chunk_text
from commons.search.embedding import HashEmbedder

FILLER = " ".join(
    f"Paragraph {n} of the report talks about the weather in the valley that year."
    for n in range(1, 13)
)
REPORT = (
    "# Rainwater tanks in the valley\n\n"
    "Rainwater tanks were installed in forty homes of the valley in the spring.\n\n"
    f"{FILLER}\n\n"
    "Homes with a covered rainwater tank had clean water through the whole dry season.\n"
)


def retrieved(body: str, title: str, *, document: bool, n: int = 1) -> Source:
    """The first passage of a body, as retrieval would hand it over."""
    first = chunk_text(body)[0]
    return Source(bytes([n]) * 32, title, bytes([50 + n]) * 32, None, "seed", first.text,
                  first.start, first.end, None, 1.0, 0.7, True,
                  body if document else None)


def test_a_short_relevant_document_is_read_whole_and_cited_where_the_sentence_is() -> None:
    question = "did a covered rainwater tank keep water clean through the dry season?"
    only_passage = retrieved(REPORT, "Rainwater tanks", document=False)
    assert "dry season" not in only_passage.text  # the answer is outside the passage
    answerer = ExtractiveAnswerer(HashEmbedder())
    before = answerer.answer(question, [only_passage])
    assert "whole dry season" not in before.text

    answer = answerer.answer(question, [retrieved(REPORT, "Rainwater tanks", document=True)])
    assert answer.text.startswith("Homes with a covered rainwater tank had clean water"), (
        answer.text)
    cited = answer.citations[0]
    assert "whole dry season" in cited.passage
    assert REPORT[cited.start:cited.end] == cited.passage
    assert cited.verified and cited.origin == "seed"


def test_a_long_document_is_read_through_its_passages_only() -> None:
    long_report = REPORT.replace(FILLER, " ".join([FILLER] * 12))
    question = "did a covered rainwater tank keep water clean through the dry season?"
    answer = ExtractiveAnswerer(HashEmbedder()).answer(
        question, [retrieved(long_report, "Rainwater tanks", document=True)])
    assert "whole dry season" not in answer.text


TWO_FINDINGS = (
    "Covered tanks keep rainwater clean for drinking in the dry season. "
    "The valley had a long dry season that year, and most wells ran low by August. "
    "Over the dry season, covered tanks kept rainwater clean enough for drinking."
)


@pytest.mark.parametrize(
    ("question", "first"),
    [
        # a claim to check: the later sentence, where reports put what they found
        ("covered tanks keep rainwater clean for drinking in the dry season",
         "Over the dry season"),
        # a question: no weight for where a sentence stands
        ("do covered tanks keep rainwater clean for drinking in the dry season?",
         "Covered tanks keep"),
    ],
)
def test_later_sentences_weigh_more_for_a_claim_only(question: str, first: str) -> None:
    body = f"# Tanks\n\n{TWO_FINDINGS}\n"
    source = Source(b"\x01" * 32, "Tanks", b"\x33" * 32, None, "seed", body, 0, len(body),
                    None, 1.0, 0.7, True, body)
    tuning = replace(tuning_for(HashEmbedder()), position_weight=0.3)
    answer = ExtractiveAnswerer(HashEmbedder(), tuning=tuning).answer(question, [source])
    assert answer.text.startswith(first), answer.text


@pytest.mark.parametrize(
    ("text", "claim"),
    [
        ("Covered tanks keep rainwater clean.", True),
        ("covered tanks keep rainwater clean", True),
        ("do covered tanks keep rainwater clean?", False),
        ("how do I add a file", False),
        ("What is a mirror", False),
        ("", False),
    ],
)
def test_what_counts_as_a_claim(text: str, claim: bool) -> None:
    assert is_claim(text) is claim


@pytest.mark.parametrize(
    "sentence",
    [
        "Here, we analysed the rainfall records of twelve villages over ten years.",
        "Households were randomly assigned to a covered or an open tank.",
        "A survey of wells was used to examine how deep the water table lies.",
        "How long the water stays clean remains to be understood.",
        "Studies are needed to find out why the tanks crack in frost.",
        "We addressed this by sampling the water every week.",
        "We expect that this report will help villages plan their tanks.",
    ],
)
def test_sentences_that_only_say_how_it_was_done_are_not_statements(sentence: str) -> None:
    assert {p.text: p.kind for p in pieces(sentence, "Tanks")} == {sentence: Kind.FRAMING}


@pytest.mark.parametrize(
    "sentence",
    [
        "We analysed the rainfall records and found that the dry season grew longer.",
        "Here we show that covered tanks keep water clean for months.",
        "Use a tight lid, and check it after every storm.",
    ],
)
def test_a_method_that_says_what_it_found_stays_a_statement(sentence: str) -> None:
    assert {p.text: p.kind for p in pieces(sentence, "Tanks")} == {sentence: Kind.STATEMENT}
