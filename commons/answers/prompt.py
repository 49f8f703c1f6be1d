"""What a language model is told: a few short passages, numbered, and the question.

Written for small local models (SmolLM2-135M-Instruct, the `llm` extra's), which
follow a short instruction that comes right after the text it is about, and
lose the thread in a long system prompt: they print it back. So the system
prompt is one sentence, the passages are the best few, trimmed, without
Markdown marks, and the instruction ends the user's turn. Larger models read it
just as well. docs/retrieval.md has what the small model wrote with it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from commons.answers.extractive import Source

SYSTEM_PROMPT = "You answer questions using only the numbered passages you are given."
INSTRUCTION = (
    "Answer the question in one or two sentences from the passages above. After each"
    " sentence, write the number of the passage it comes from in square brackets."
)
MAX_PASSAGES = 3  # the best relevant passages; a small model loses more than it gains from more
PASSAGE_CHARS = 400  # each passage trimmed to a sentence end within this many characters
# Where a model that goes on past its answer starts a new round of the pattern.
STOP = ["\nQuestion:", "\nPassages:"]

_MARKUP = re.compile(r"(?m)^[ \t]{0,3}#{1,6}[ \t]+|\*\*|__|`")
_SENTENCE_END = re.compile(r"[.!?](?=\s)")


def trimmed(text: str, limit: int = PASSAGE_CHARS) -> str:
    """The passage on one line, without Markdown marks, cut at a sentence end."""
    flat = " ".join(_MARKUP.sub("", text).split())
    if len(flat) <= limit:
        return flat
    head = flat[: limit + 1]
    ends = [m.end() for m in _SENTENCE_END.finditer(head)]
    if ends and ends[-1] > limit // 3:
        return head[: ends[-1]]
    return head[:limit].rsplit(" ", 1)[0] + " …"


def build_messages(question: str, sources: Sequence[Source]) -> list[dict[str, str]]:
    passages = "\n\n".join(f"[{n}] {trimmed(s.text)}" for n, s in enumerate(sources, start=1))
    user = f"Passages:\n\n{passages}\n\nQuestion: {question}\n\n{INSTRUCTION}"
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def instructions() -> list[str]:
    """The words a model is told, as opposed to the passages: an answer must not echo them."""
    return [SYSTEM_PROMPT, INSTRUCTION]
