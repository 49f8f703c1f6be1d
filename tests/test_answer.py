"""Answers: extractive sentences with citations, abstention, and checked generator citations."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from fakes import FakeChatServer, ScriptedGenerator

from commons.answers.extractive import (
    ABSTAIN_TEXT,
    Answer,
    Citation,
    ExtractiveAnswerer,
    Source,
)
from commons.answers.generated import answer_question, generated_answer, renumber_citations
from commons.answers.generators import OpenAICompatible, build_messages, chat_url, make_generator
from commons.model.errors import CommonsError
from commons.search.embedding import HashEmbedder
from commons.service import Commons

CITATION_KEYS = {
    "n", "id", "title", "author", "author_name", "origin", "passage", "score", "page", "start",
    "end", "verified",
}


def source(n: int, text: str, title: str = "Doc") -> Source:
    return Source(
        doc=bytes([n]) * 32,
        title=f"{title} {n}",
        author=bytes([100 + n]) * 32,
        author_name=f"author{n}",
        origin="seed",
        text=text,
        start=10 * n,
        end=10 * n + len(text),
        page=None,
        score=1.0 / n,
    )


SOURCES = [
    source(1, "Rain gardens slow storm water. They let the water soak into the ground."),
    source(2, "A rain garden needs plants that survive both flooding and drought."),
    source(3, "Chickens need a dry coop. Foxes hunt chickens at night."),
]


def cited_numbers(text: str) -> set[int]:
    return {int(n) for n in re.findall(r"\[(\d+)\]", text)}


def test_extractive_answer_cites_every_sentence_with_existing_numbers() -> None:
    answer = ExtractiveAnswerer(HashEmbedder()).answer("how does a rain garden work?", SOURCES)
    assert not answer.abstained
    numbers = [c.n for c in answer.citations]
    assert numbers == list(range(1, len(numbers) + 1))
    assert cited_numbers(answer.text) == set(numbers)
    # every sentence ends with a citation, and the cited text is in the cited passage
    for sentence, n in re.findall(r"(.+?) \[(\d+)\]\s*", answer.text):
        assert sentence.strip() in answer.citations[int(n) - 1].passage
    assert all("Chickens" not in c.passage for c in answer.citations)


def test_the_sentence_that_answers_best_comes_first() -> None:
    sources = [source(1, "Rain gardens need a low spot in the yard. Deep-rooted plants"
                         " hold a rain garden's soil together.")]
    answer = ExtractiveAnswerer(HashEmbedder()).answer("which plants hold rain garden soil?",
                                                       sources)
    assert answer.text.startswith("Deep-rooted plants")


def test_it_abstains_when_nothing_is_relevant() -> None:
    answer = ExtractiveAnswerer(HashEmbedder()).answer("saxophone tuning?", SOURCES)
    assert answer == Answer(ABSTAIN_TEXT, (), True)
    assert ExtractiveAnswerer(HashEmbedder()).answer("rain", []).abstained


def test_answer_json_has_exactly_the_promised_fields() -> None:
    answer = ExtractiveAnswerer(HashEmbedder()).answer("rain garden plants", SOURCES)
    data = answer.to_json()
    assert set(data) == {"answer", "citations", "abstained", "model", "set_aside"}
    assert data["model"] is None and data["set_aside"] is None
    assert all(set(c) == CITATION_KEYS for c in data["citations"])
    first = data["citations"][0]
    assert first["id"] == answer.citations[0].id and len(first["id"]) == 64
    json.dumps(data)  # plain JSON values only


@pytest.mark.parametrize(
    ("text", "given", "expected", "order"),
    [
        ("A [1]. B [9].", 3, "A [1]. B.", [1]),
        ("A [2]. B [1, 9]. C [3].", 3, "A [1]. B [2]. C [3].", [2, 1, 3]),
        ("A [9][10].", 3, "A.", []),
        ("A [1-3].", 3, "A [1][2][3].", [1, 2, 3]),
        ("A [0] [4] B.", 3, "A B.", []),
        ("No citations at all.", 3, "No citations at all.", []),
    ],
)
def test_renumber_citations(text: str, given: int, expected: str, order: list[int]) -> None:
    assert renumber_citations(text, given) == (expected, order)


def test_a_citation_number_that_does_not_exist_is_never_shown() -> None:
    gen = ScriptedGenerator("A rain garden needs plants [2]. They stop floods [9]."
                            " Chickens need a coop [3][7].")
    answer = generated_answer("rain gardens?", SOURCES, gen)
    assert "[9]" not in answer.text and "[7]" not in answer.text
    assert cited_numbers(answer.text) == {c.n for c in answer.citations} == {1, 2}
    assert [c.id for c in answer.citations] == [SOURCES[1].doc.hex(), SOURCES[2].doc.hex()]


def test_a_generator_is_not_asked_when_nothing_is_relevant() -> None:
    gen = ScriptedGenerator("made up [1]")
    answer = answer_question("saxophone tuning?", SOURCES, HashEmbedder(), generator=gen)
    assert answer.abstained and gen.seen == []


def test_an_answer_citing_nothing_still_lists_its_sources() -> None:
    answer = generated_answer("rain?", SOURCES[:2], ScriptedGenerator("It rains on gardens."))
    assert answer.text == "It rains on gardens." and [c.n for c in answer.citations] == [1, 2]


def test_prompt_numbers_the_passages() -> None:
    messages = build_messages("why?", SOURCES)
    assert "[1] Rain gardens slow storm water." in messages[1]["content"]
    assert "[3] Chickens" in messages[1]["content"] and "[4]" not in messages[1]["content"]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:11434/v1", "http://127.0.0.1:11434/v1/chat/completions"),
        ("http://host:8080", "http://host:8080/v1/chat/completions"),
        ("https://h/v1/chat/completions", "https://h/v1/chat/completions"),
    ],
)
def test_chat_url(url: str, expected: str) -> None:
    assert chat_url(url) == expected


def test_generator_options_are_checked() -> None:
    assert make_generator() is None
    with pytest.raises(CommonsError, match="--model"):
        make_generator("http://127.0.0.1:1/v1")
    with pytest.raises(CommonsError, match="not both"):
        make_generator("http://127.0.0.1:1/v1", "m", "x.gguf")
    with pytest.raises(CommonsError, match="not an http"):
        make_generator("ftp://x", "m")
    with pytest.raises(CommonsError, match="no such model file"):
        make_generator(gguf="/nonexistent/model.gguf")


@pytest.fixture
def chat_server() -> Iterator[FakeChatServer]:
    with FakeChatServer("Rain gardens soak water in [1], slowing storms [99].") as server:
        yield server


def test_openai_compatible_endpoint_answers_with_checked_citations(
    chat_server: FakeChatServer,
) -> None:
    gen = OpenAICompatible(chat_server.url, "tiny", api_key="k")
    answer = generated_answer("rain gardens?", SOURCES, gen)
    assert answer.text == "Rain gardens soak water in [1], slowing storms."
    assert [c.title for c in answer.citations] == ["Doc 1"]
    [request] = chat_server.requests
    assert request["path"] == "/v1/chat/completions" and request["auth"] == "Bearer k"
    assert request["body"]["model"] == "tiny" and request["body"]["temperature"] == 0
    assert "[3] Chickens" in request["body"]["messages"][1]["content"]


def test_endpoint_errors_are_explained() -> None:
    with FakeChatServer("", status=404) as server, pytest.raises(CommonsError, match="404"):
        OpenAICompatible(server.url, "missing").generate("q", SOURCES)
    with pytest.raises(CommonsError, match="cannot reach"):
        OpenAICompatible("http://127.0.0.1:9/v1", "m", timeout=5).generate("q", SOURCES)


def test_ask_through_the_home_with_a_generator(home: Commons) -> None:
    reply = "A community mirror is an always-on peer [1], run by a school [99]."
    with FakeChatServer(reply) as server:
        answer = home.ask("how do I run a community mirror?", generator=OpenAICompatible(
            server.url, "tiny"))
    assert not answer.abstained and answer.set_aside is None and answer.model
    assert "[99]" not in answer.text
    assert [c.n for c in answer.citations] == [1]
    assert isinstance(answer.citations[0], Citation) and answer.citations[0].origin == "seed"


WELL = ("Chlorinating a well",
        "After a flood, let the chlorine stay in the well for twelve hours, then pump it clear.")


def test_an_answer_says_what_each_citation_stands_on(home: Commons) -> None:
    obj, _ = home.add_document(title=WELL[0], body=WELL[1])
    answer = home.ask("how long should chlorine stay in a well after a flood?")
    assert not answer.abstained
    [cited] = [c for c in answer.citations if c.id == obj.id.hex()]
    assert (cited.title, cited.author, cited.author_name) == (
        WELL[0], home.public_key.hex(), "tester")
    assert cited.origin == "local" and cited.verified
    assert all(c.verified for c in answer.citations)


def test_a_document_changed_on_disk_is_never_quoted(home: Commons) -> None:
    """Its words are still indexed, but its author's key no longer vouches for them."""
    obj, _ = home.add_document(title=WELL[0], body=WELL[1])
    question = "how long should chlorine stay in a well after a flood?"
    assert obj.id.hex() in {c.id for c in home.ask(question).citations}
    with home.store.transaction() as db:
        db.execute("UPDATE objects SET raw = ? WHERE id = ?",
                   (obj.to_bytes().replace(b"twelve hours", b"ten minutes"), obj.id))
    answer = home.ask(question)
    assert obj.id.hex() not in {c.id for c in answer.citations}
    assert "ten minutes" not in answer.text and "twelve hours" not in answer.text
