"""Importing chromadb without the `overrides` package's import-time signature checks.

chromadb decorates its methods with `overrides.override`, which, at import,
walks each method's base classes and compares signatures with `inspect`: a
check for chromadb's own developers that costs about 0.4 s of every cold
`commons ask` (a third of importing chromadb) and can only raise `TypeError`
on a chromadb that is broken anyway. While chromadb is imported and its client
opened (`without_override_checks()`), the decorator only marks the method
(`__override__ = True`, which is all that `EnforceOverrides` classes read
later); the original is put back at once, so nothing imported afterwards is
affected. This is the only place that does it
(tests/test_chroma_import.py).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

_lock = threading.Lock()
DECORATORS = ("override", "overrides")  # the two names chromadb imports


def mark_override(method: Any = None, **options: Any) -> Any:
    """`@override` and `@override(...)` as a marker only: no signature check."""
    if method is None:
        return mark_override

    method.__override__ = True
    return method


@contextlib.contextmanager
def without_override_checks() -> Iterator[None]:
    """Inside the block, `overrides.override` only marks methods. Import chromadb and
    open its client inside it: the client imports more of chromadb as it starts."""
    with _lock:
        try:
            import overrides
        except ImportError:  # a chromadb that no longer uses it
            yield
            return
        saved: dict[str, Callable[..., Any]] = {
            name: getattr(overrides, name) for name in DECORATORS if hasattr(overrides, name)
        }
        for name in saved:
            setattr(overrides, name, mark_override)
        try:
            yield
        finally:
            for name, original in saved.items():
                setattr(overrides, name, original)
