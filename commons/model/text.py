"""Small text helpers shared by the lexical index, the answerer and the fake embedder."""

from __future__ import annotations

import re

# English function words and question words: they match almost every passage,
# so they only add noise to a word search or to overlap scores.
_STOPWORD_TEXT = """
    a about above after again against all am an and any are aren't as at be because been
    before being below between both but by can cannot could did do does doing don't down
    during each few for from further had has have having he her here hers herself him
    himself his how i if in into is isn't it its itself just let me more most my myself
    no nor not of off on once only or other ought our ours ourselves out over own same
    she should so some such than that the their theirs them themselves then there these
    they this those through to too under until up very was we were what when where which
    while who whom why will with would you your yours yourself yourselves s t ll re
    ve also may might must shall us get got one
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())

_WORD = re.compile(r"\w+")
_HEADING_MARK = re.compile(r"(?m)^[ \t]{0,3}#{1,6}[ \t]+")


def one_line(text: str) -> str:
    """Text on one line for a snippet or a quote, without Markdown's heading marks
    (a reader sees "Drying mangoes Slice…", not "# Drying mangoes Slice…")."""
    return " ".join(_HEADING_MARK.sub("", text).split())


def words(text: str) -> list[str]:
    """Lower-cased word tokens (letters, digits, underscore; any script)."""
    return _WORD.findall(text.lower())


def content_words(text: str) -> list[str]:
    """Words without stopwords, each once, in order of first use."""
    seen: dict[str, None] = {}
    for word in words(text):
        if word not in STOPWORDS and word not in seen:
            seen[word] = None
    return list(seen)


def stem(word: str) -> str:
    """A light suffix stripper: enough to match "mirrors" with "mirror"."""
    for suffix in ("ingly", "edly", "ing", "ies", "ied", "es", "ed", "ly", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            base = word[: -len(suffix)]
            return base + "y" if suffix in ("ies", "ied") else base
    return word
