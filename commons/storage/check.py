"""Checking a home's store, and saving what still verifies from a damaged one.

Both read the SQLite file directly, read-only, without migrating or locking
it, so they work on a store too damaged to open normally (and while a node
runs). Rows are read in small rowid ranges; a range on a damaged page is read
again row by row, so one bad page loses only the rows on it.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from commons.model.errors import InvalidObject, StoreError
from commons.model.objects import parse

log = logging.getLogger(__name__)

_ANY_TIME = 2**40  # objects passed the clock check when stored
_STEP = 256


@dataclass
class CheckReport:
    """What `commons check` found."""

    path: str
    verified: int = 0
    bad: list[tuple[str, str]] = field(default_factory=list)  # (id hex or rowid, reason)
    unreadable_rows: int = 0
    integrity: list[str] = field(default_factory=list)  # SQLite's own findings
    quarantined: int = 0
    salvaged: int | None = None

    @property
    def ok(self) -> bool:
        return not (self.bad or self.unreadable_rows or self.integrity)

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path, "ok": self.ok, "verified": self.verified,
            "bad": [{"id": i, "reason": r} for i, r in self.bad],
            "unreadable_rows": self.unreadable_rows, "integrity": self.integrity,
            "quarantined": self.quarantined, "salvaged": self.salvaged,
        }


def _connect(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise StoreError(f"{path} does not exist; is this the right --home?")
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError:
            # A home on a read-only disk (or not ours to write): SQLite cannot set up
            # its WAL index there. Read the file as it stands instead.
            db.close()
            db = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
        return db
    except sqlite3.Error as exc:
        raise StoreError(f"{path} cannot be opened: {exc}") from exc


def _rows(db: sqlite3.Connection, report: CheckReport) -> Iterator[tuple[bytes, bytes]]:
    try:
        top = db.execute("SELECT max(rowid) FROM objects").fetchone()[0] or 0
    except sqlite3.Error as exc:
        report.integrity.append(f"the objects table cannot be read: {exc}")
        return
    for start in range(1, top + 1, _STEP):
        end = start + _STEP
        try:
            rows = db.execute("SELECT id, raw FROM objects WHERE rowid >= ? AND rowid < ?",
                              (start, end)).fetchall()
        except sqlite3.Error:
            rows = []
            for rowid in range(start, end):  # the damaged page's neighbours still count
                try:
                    rows += db.execute("SELECT id, raw FROM objects WHERE rowid = ?",
                                       (rowid,)).fetchall()
                except sqlite3.Error:
                    report.unreadable_rows += 1
        for oid, raw in rows:
            yield bytes(oid), bytes(raw)


def check_store(path: Path, *, keep: bool = False,
                max_reported: int = 100) -> tuple[CheckReport, list[bytes]]:
    """Verify every stored object; with `keep`, also return those that verify (bytes)."""
    report = CheckReport(str(path))
    db = _connect(path)
    good: list[bytes] = []
    try:
        try:
            report.integrity = [r[0] for r in db.execute("PRAGMA integrity_check(20)")
                                if r[0] != "ok"]
        except sqlite3.Error as exc:
            report.integrity = [str(exc)]
        for oid, raw in _rows(db, report):
            try:
                obj = parse(raw, now=_ANY_TIME)
                if obj.id != oid:
                    raise InvalidObject("its bytes hold another object's id")
            except InvalidObject as exc:
                if len(report.bad) < max_reported:
                    report.bad.append((oid.hex(), str(exc)))
                continue
            report.verified += 1
            if keep:
                good.append(raw)
        with contextlib.suppress(sqlite3.Error):  # a store from before quarantine existed
            report.quarantined = int(db.execute("SELECT count(*) FROM quarantine").fetchone()[0])
    finally:
        db.close()
    return report, good
