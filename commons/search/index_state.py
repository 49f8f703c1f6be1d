"""What the search index reports: progress while embedding, how far the dense index
has come, and what one catch-up did. Plain values, shared by the CLI, the node and
the app."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class IndexProgress:
    """Work done since the previous report (reports come after each embedding batch)."""

    chunks: int  # passages embedded and written
    documents: int  # documents finished


@dataclass(frozen=True)
class DenseState:
    """The progressive index: every document is searchable by words at once; `embedded`
    of the `documents` are searchable by meaning too."""

    documents: int
    embedded: int
    rate: float  # documents embedded per second, over the last minute

    @property
    def complete(self) -> bool:
        return self.embedded >= self.documents

    def note(self) -> str | None:
        """The one line an answer from a partial index carries, or None."""
        if self.complete:
            return None
        return (f"dense index: {self.embedded} of {self.documents} documents; answer from"
                f" words and {self.embedded} documents so far")

    def to_json(self) -> dict[str, Any]:
        return {"documents": self.documents, "dense": self.embedded,
                "complete": self.complete, "rate": self.rate, "note": self.note()}


@dataclass(frozen=True)
class SyncReport:
    indexed: int = 0
    chunks: int = 0
    removed: int = 0

    def to_json(self) -> dict[str, int]:
        return {"indexed": self.indexed, "chunks": self.chunks, "removed": self.removed}
