"""A question, answered from a home: retrieve passages, attach provenance, answer."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from commons.answers.extractive import Answer, Source
from commons.answers.generated import Generator, answer_question
from commons.model.errors import CommonsError, InvalidObject
from commons.model.objects import Document, normalise_text, verify
from commons.search.lexical import Filters
from commons.search.retrieval import Hit, Retriever

if TYPE_CHECKING:
    from commons.service import Commons

log = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 2000
PASSAGES_PER_DOCUMENT = 2  # a document's second-best passage often holds the rest of the answer


def ask(
    commons: Commons,
    question: str,
    *,
    k: int,
    authors: Sequence[bytes],
    tags: Sequence[str],
    blocked: frozenset[bytes],
    generator: Generator | None,
) -> Answer:
    question = normalise_text(" ".join(question.split()))
    if not question:
        raise CommonsError("ask a question, for example: commons ask \"how do I add a file?\"")
    if len(question) > MAX_QUESTION_CHARS:
        raise CommonsError(f"the question is {len(question)} characters; keep it under"
                           f" {MAX_QUESTION_CHARS}")
    if not 1 <= k <= 50:
        raise CommonsError("-k must be between 1 and 50")
    # Words of everything stored; vectors of what is embedded so far: never queue
    # behind an embedding backlog.
    index = commons.search_index(dense=False)
    filters = Filters(
        authors=frozenset(authors), tags=frozenset(tags), blocked=frozenset(blocked)
    )
    retriever = Retriever(index, commons.embedder)
    with index.answering():  # the background embedding of a backlog gives way meanwhile
        vector = retriever.embed_query(question)  # once: retrieval and the answerer share it
        hits = retriever.search(question, k=k, filters=filters, vector=vector)
        return answer_question(
            question, sources(commons, hits), commons.answer_embedder, generator=generator,
            vector=vector,
        )


def sources(commons: Commons, hits: Sequence[Hit]) -> list[Source]:
    """Passages with their document's title, author and origin, best first.

    Passages are ordered by their own fused score, so the second passage of the
    best document (the steps under its "how to" heading, say) can come before
    the best passage of a weakly related sixth document.

    Each document's signature is checked again here, so an answer never quotes
    text that its author's key does not vouch for (a stored object changed on
    disk since it was verified and stored is left out, and logged).
    """
    names = commons.store.display_names()
    ranked: list[tuple[float, int, Source]] = []
    for rank, hit in enumerate(hits):
        try:
            stored = commons.store.get_stored(hit.doc)
        except CommonsError:  # retracted a moment ago
            continue
        content = stored.obj.content
        if not isinstance(content, Document):
            continue
        try:
            verify(stored.obj, now=max(commons.clock(), stored.obj.created_at))
        except InvalidObject as exc:
            log.warning("not quoting %s: %s", hit.doc.hex()[:16], exc)
            continue
        for i, chunk in enumerate(hit.passages[:PASSAGES_PER_DOCUMENT]):
            source = Source(
                doc=hit.doc,
                title=content.title,
                author=stored.obj.author,
                author_name=names.get(stored.obj.author),
                origin=stored.origin,
                text=chunk.text,
                start=chunk.start,
                end=chunk.end,
                page=chunk.page,
                score=hit.score,
                similarity=hit.similarity,
                verified=True,
                document=content.body,
            )
            ranked.append((hit.passage_scores[i], rank, source))
    ranked.sort(key=lambda t: (-t[0], t[1]))
    return [source for _, _, source in ranked]
