"""What can be an answer sentence, and abstention when only a non-answer matches."""

from __future__ import annotations

import re

import pytest

from commons.answers.extractive import ExtractiveAnswerer, Source
from commons.answers.sentences import Kind, pieces
from commons.search.embedding import HashEmbedder
from commons.service import Commons


def kinds(text: str, title: str = "Seed potatoes") -> dict[str, Kind]:
    return {p.text: p.kind for p in pieces(text, title)}


def test_headings_and_titles_are_never_statements() -> None:
    text = (
        "Seed potatoes\n"
        "Keeping seed potatoes over winter\n"
        "Store seed potatoes in a cool, dark and frost-free place until spring.\n\n"
        "## Chitting\n\n"
        "2.2. Shared MIME-info Database\n"
        "Set the tubers in egg boxes with their eyes up, six weeks before planting."
    )
    got = kinds(text)
    assert got["Seed potatoes"] is Kind.HEADING
    assert got["Keeping seed potatoes over winter"] is Kind.HEADING
    assert got["Shared MIME-info Database"] is Kind.HEADING
    statements = [t for t, k in got.items() if k is Kind.STATEMENT]
    assert statements == [
        "Store seed potatoes in a cool, dark and frost-free place until spring.",
        "Set the tubers in egg boxes with their eyes up, six weeks before planting.",
    ]
    assert "Chitting" not in " ".join(got)  # a Markdown heading is not even a piece


def test_code_lines_and_fences_are_never_statements() -> None:
    text = (
        "Run the glob module from a script to list files that match a pattern.\n\n"
        "```python\nimport glob\nprint(glob.glob('*.txt'))  # every text file here.\n```\n\n"
        "    for name in glob.iglob('**/*.py', recursive=True): print(name).\n\n"
        "$ commons add notes.md --tag farm and then it is signed and indexed."
    )
    got = kinds(text, "glob")
    statements = [t for t, k in got.items() if k is Kind.STATEMENT]
    assert statements == [
        "Run the glob module from a script to list files that match a pattern."
    ]
    assert Kind.CODE in got.values()


def test_list_markers_are_stripped_and_bare_markers_dropped() -> None:
    got = kinds("- **Be brief.** A short note is read; a long one is skimmed.\n-\n* \n1.")
    statements = [t for t, k in got.items() if k is Kind.STATEMENT]
    assert statements == ["A short note is read; a long one is skimmed."]
    assert all(k is Kind.FRAGMENT for t, k in got.items() if t not in statements)


@pytest.mark.parametrize(
    "sentence",
    [
        "How much chlorine should stay in a well after a flood?",
        '"How much chlorine to treat 20 litres of well water?" works better than "water'
        ' safety".',
    ],
)
def test_questions_and_example_questions_are_not_statements(sentence: str) -> None:
    assert kinds(sentence, "Asking") == {sentence: Kind.QUESTION}


def source(text: str, title: str, n: int = 1, similarity: float | None = None) -> Source:
    return Source(bytes([n]) * 32, title, bytes([50 + n]) * 32, None, "seed", text, 0,
                  len(text), None, 1.0, similarity)


def test_a_passage_that_matches_only_through_an_example_question_abstains() -> None:
    passage = (
        "- **Be specific.** \"How long should chlorine stay in a well after a flood?\" works"
        " better than \"water safety\".\n"
        "- **Use the words a document would use.** Guides say drip irrigation, not pipes."
    )
    answerer = ExtractiveAnswerer(HashEmbedder())
    answer = answerer.answer("how long should chlorine stay in a well after a flood?",
                             [source(passage, "Asking the commons")])
    assert answer.abstained


def test_a_heading_is_never_an_answer_sentence() -> None:
    passage = (
        "Keeping seed potatoes over winter\n"
        "Keep seed potatoes over winter in a cool dark shed, in paper sacks, away from frost."
    )
    answer = ExtractiveAnswerer(HashEmbedder()).answer(
        "keeping seed potatoes over winter", [source(passage, "Potatoes")])
    assert not answer.abstained
    assert answer.text == (
        "Keep seed potatoes over winter in a cool dark shed, in paper sacks, away from frost. [1]"
    )


def test_documents_far_below_the_best_one_are_not_quoted() -> None:
    best = source("The glob module finds path names that match a pattern, like *.txt, in"
                  " the shell's rules. The glob module returns a list of path names.",
                  "glob: Unix style path name pattern expansion", 1, similarity=0.62)
    loose = source("The pyclbr module reads a module's classes and functions without"
                   " importing the module.", "pyclbr: Python module browser support", 2,
                   similarity=0.41)
    answer = ExtractiveAnswerer(HashEmbedder()).answer(
        "what does the Python glob module do?", [best, loose])
    assert not answer.abstained
    assert [c.title for c in answer.citations] == [best.title]


WELL = """# Chlorinating a well after a flood

After a flood, pour household bleach into the well and let the chlorine stay in the well for
at least twelve hours, then pump until the smell is gone.
"""


def test_a_retracted_document_no_longer_answers_and_nothing_else_pretends_to(
    home: Commons,
) -> None:
    question = "how long should chlorine stay in a well after a flood?"
    obj, _ = home.add_document(title="Chlorinating a well after a flood", body=WELL)
    answer = home.ask(question)
    assert not answer.abstained and "twelve hours" in answer.text
    home.retract(obj.id.hex())
    answer = home.ask(question)
    assert answer.abstained, answer.text
    assert not re.search(r"\[\d+\]", answer.text)


@pytest.mark.parametrize(
    "question",
    [
        "how do I run a community mirror?",
        "how does replication between peers work?",
        "how do signatures protect documents?",
        "can I use the commons without a network connection?",
    ],
)
def test_seed_questions_get_answers(home: Commons, question: str) -> None:
    home.search_index()  # every seed searchable by meaning too, as after `commons init`
    answer = home.ask(question)
    assert not answer.abstained and answer.citations
    assert all(c.origin == "seed" for c in answer.citations)


@pytest.mark.parametrize(
    "sentence",
    [
        "OBJECTIVE To determine whether folic acid lowers homocysteine in kidney disease.",
        "DESIGN, SETTING, AND PATIENTS Retrospective analysis of two cohorts of patients.",
        "To provide information about the extent of indoor aerosolization of spores.",
        "We investigated whether the gut microbiota regulates weight gain in mice.",
        "The objective of this study was to evaluate the external validity of the trials.",
        "However, the role of AMPK in fibrosis is not well understood.",
        "Whether vitamins lower mortality in this population is unknown.",
        "Their safety and efficacy have not been compared.",
        "Further research is required to determine the role of combination therapy.",
        "This guide covers how to add documents and how to find them again.",
    ],
)
def test_sentences_that_only_frame_a_question_are_not_statements(sentence: str) -> None:
    assert kinds(sentence, "A study") == {sentence: Kind.FRAMING}


@pytest.mark.parametrize(
    "sentence",
    [
        "CONCLUSIONS Folic acid lowered homocysteine but did not slow kidney disease.",
        "RESULTS Median homocysteine fell with each increase in the dose of folic acid.",
        "Here, we show that Ly49Q is crucial for the swift polarization of neutrophils.",
        "To check whether a peer is online, run commons peers and read the last column.",
        "The goal of a mirror is to keep every document its policy accepts.",
        "DNA Replication copies the genome before a cell divides.",
    ],
)
def test_findings_and_instructions_stay_statements(sentence: str) -> None:
    assert kinds(sentence, "A study") == {sentence: Kind.STATEMENT}


def test_the_finding_is_quoted_not_the_aim_that_repeats_the_question() -> None:
    passage = (
        "OBJECTIVE To determine whether daily folic acid slows chronic kidney disease. "
        "RESULTS Daily folic acid did not slow the decline of kidney function over three years."
    )
    answer = ExtractiveAnswerer(HashEmbedder()).answer(
        "does daily folic acid slow chronic kidney disease?", [source(passage, "Folic acid")])
    assert answer.text.startswith("RESULTS Daily folic acid did not slow"), answer.text


def test_the_words_that_tell_candidates_apart_weigh_more() -> None:
    """Every sentence names the topic; only one says what the question asks about it,
    and it shares fewer of the question's words than the others."""
    from commons.answers.extractive import _stems, _weighted_overlaps

    question = _stems("tamoxifen breast cancer: do poor metabolizers have recurrences?")
    topic = "Tamoxifen treats breast cancer."
    finding = "Slow metabolizers had more recurrences."
    plain = [len(question & _stems(t)) for t in (topic, finding)]
    assert plain[0] > plain[1]
    weighted = _weighted_overlaps(
        question, [topic, "Tamoxifen is given for breast cancer over five years.", finding])
    assert weighted[2] > weighted[0]
