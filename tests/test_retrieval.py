"""Hybrid retrieval: rank fusion, one hit per document, identical text once, filters."""

from __future__ import annotations

import pytest

from commons.model.identity import Identity
from commons.model.objects import Document, sign
from commons.search.lexical import Filters, Scored
from commons.search.retrieval import Retriever, rrf
from commons.service import Commons

NOW = 1_800_000_000


def test_rrf_rewards_agreement_between_rankings() -> None:
    fused = rrf([([b"a", b"b", b"c"], 1.0), ([b"c", b"a"], 1.0)], k=60)
    assert fused[b"a"] == pytest.approx(1 / 61 + 1 / 62)
    assert fused[b"c"] == pytest.approx(1 / 63 + 1 / 61)
    assert sorted(fused, key=lambda d: -fused[d]) == [b"a", b"c", b"b"]


def test_rrf_weights_scale_a_ranking() -> None:
    fused = rrf([([b"a"], 2.0), ([b"b"], 1.0)], k=10)
    assert fused[b"a"] == pytest.approx(2 * fused[b"b"])


def retriever(c: Commons) -> Retriever:
    return Retriever(c.search_index(), c.embedder)


def test_each_document_appears_once_with_its_passages_best_first(home: Commons) -> None:
    body = "\n\n".join(
        f"## Part {i}\n\n" + f"Millet grows in dry soil, part {i}. " * 30 for i in range(4)
    )
    obj, _ = home.add_document(title="Millet", body=body)
    home.search_index().sync()
    hits = retriever(home).search("millet dry soil", k=5)
    assert [h.doc for h in hits].count(obj.id) == 1
    hit = hits[0]
    assert hit.doc == obj.id and len(hit.passages) > 1
    assert list(hit.passage_scores) == sorted(hit.passage_scores, reverse=True)
    assert hit.dense_rank == 1 and hit.lexical_rank == 1


def test_identical_text_signed_twice_is_shown_once(home: Commons, alice: Identity) -> None:
    mine, _ = home.add_document(title="Sorghum", body="Sorghum tolerates drought well.")
    copy = sign(Document(author=alice.public_key, created_at=NOW, title="Sorghum",
                         body="Sorghum tolerates drought well."), alice)
    home.store.put(copy, now=NOW)
    home.search_index().sync()
    hits = retriever(home).search("sorghum drought", k=5)
    assert len({mine.id, copy.id} & {h.doc for h in hits}) == 1


def test_a_document_found_by_only_one_method_is_still_returned(home: Commons) -> None:
    # A code that only the word search can match exactly.
    obj, _ = home.add_document(title="Pump manual", body="Error QX7731 means the pump ran dry.")
    home.search_index().sync()
    hits = retriever(home).search("QX7731", k=8)
    assert hits[0].doc == obj.id and hits[0].lexical_rank == 1


def test_filters_apply_to_both_methods(home: Commons, alice: Identity) -> None:
    mine, _ = home.add_document(title="Kale", body="Kale likes cool weather.", tags=["garden"])
    theirs = sign(Document(author=alice.public_key, created_at=NOW, title="Kale",
                           body="Kale likes cool weather and rain.", tags=("farm",)), alice)
    home.store.put(theirs, now=NOW)
    home.search_index().sync()
    r = retriever(home)
    both = {h.doc for h in r.search("kale cool weather", k=3)}
    assert {mine.id, theirs.id} <= both
    alice_only = Filters(authors=frozenset({alice.public_key}))
    only_alice = r.search("kale cool weather", k=8, filters=alice_only)
    assert [h.doc for h in only_alice] == [theirs.id]
    tagged = r.search("kale", k=8, filters=Filters(tags=frozenset({"garden"})))
    assert [h.doc for h in tagged] == [mine.id]
    unblocked = r.search("kale", k=8, filters=Filters(blocked=frozenset({alice.public_key})))
    assert theirs.id not in {h.doc for h in unblocked} and mine.id in {h.doc for h in unblocked}


def test_fuse_ignores_passages_that_are_no_longer_indexed(home: Commons) -> None:
    r = retriever(home)
    assert r.fuse([Scored(10**9, 0.9)], [Scored(10**9 + 1, 3.0)], k=5) == []
