"""Questions asked in the app, kept in the home (`questions.jsonl`) until cleared.

Each line is one question with the answer it got, as JSON; the newest is last.
The file belongs to this person alone: it is never signed or shared. No textual.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

HISTORY_FILE = "questions.jsonl"
MAX_KEPT = 200


class QuestionLog:
    def __init__(self, home: Path) -> None:
        self.path = home / HISTORY_FILE

    def load(self) -> list[tuple[str, dict[str, Any]]]:
        """(question, answer JSON), newest first, each question once."""
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        except (OSError, UnicodeDecodeError) as exc:
            log.warning("cannot read %s: %s", self.path, exc)
            return []
        out: list[tuple[str, dict[str, Any]]] = []
        seen: set[str] = set()
        for line in reversed(lines):
            try:
                entry = json.loads(line)
                question, answer = str(entry["question"]), entry["answer"]
            except (ValueError, KeyError, TypeError):
                continue  # a torn last line after a crash loses one question, not all
            if question not in seen and isinstance(answer, dict):
                seen.add(question)
                out.append((question, answer))
        return out

    def add(self, question: str, answer: dict[str, Any], *, asked_at: int) -> None:
        entry = {"question": question, "asked_at": asked_at, "answer": answer}
        line = json.dumps(entry, ensure_ascii=False)
        kept = self.load()
        if len(kept) >= MAX_KEPT:  # rewrite without the oldest
            older = [{"question": q, "answer": a} for q, a in reversed(kept[: MAX_KEPT - 1])]
            self._rewrite([json.dumps(e, ensure_ascii=False) for e in older] + [line])
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(line + "\n")

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)

    def _rewrite(self, lines: list[str]) -> None:
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write("".join(line + "\n" for line in lines))
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
