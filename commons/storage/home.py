"""A commons home: the directory that holds one peer's key, store and indexes.

One process owns a home at a time (an exclusive lock on `lock`). Others find
the owner's pid in the lock file and, when the owner is a node, its local API
address in `node.json`.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import pwd
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from commons.model.errors import HomeError, HomeLocked
from commons.model.identity import Identity

KEY_FILE = "identity.key"
DB_FILE = "commons.db"
LOCK_FILE = "lock"
NODE_FILE = "node.json"
INDEX_DIR = "index"


@dataclass(frozen=True)
class HomePaths:
    root: Path

    @property
    def key(self) -> Path:
        return self.root / KEY_FILE

    @property
    def db(self) -> Path:
        return self.root / DB_FILE

    @property
    def lock(self) -> Path:
        return self.root / LOCK_FILE

    @property
    def node(self) -> Path:
        return self.root / NODE_FILE

    @property
    def index(self) -> Path:
        return self.root / INDEX_DIR

    def exists(self) -> bool:
        return self.key.exists() and self.db.exists()

    def require(self) -> None:
        if not self.root.is_dir():
            raise HomeError(
                f"there is no commons home at {self.root}; create one with"
                f" `commons --home {self.root} init`"
            )
        if not self.exists():
            raise HomeError(
                f"{self.root} is not a commons home (no {KEY_FILE} or {DB_FILE});"
                f" run `commons --home {self.root} init`"
            )

    def owner(self) -> int | None:
        """The pid written by the process that holds the lock, if any is written."""
        try:
            text = self.lock.read_text().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None

    def node_info(self) -> dict[str, Any] | None:
        """The running node's local API address, if a node owns this home."""
        try:
            info = json.loads(self.node.read_text())
        except (OSError, ValueError):
            return None
        return info if isinstance(info, dict) else None


class HomeLock:
    """An exclusive, process-wide claim on a home. Released on close or exit."""

    def __init__(self, paths: HomePaths) -> None:
        self.paths = paths
        self._file: IO[str] | None = None

    def acquire(self) -> HomeLock:
        try:
            self.paths.root.mkdir(parents=True, exist_ok=True)
            f = open(self.paths.lock, "a+")  # noqa: SIM115  (held open while we own the home)
        except OSError as exc:
            raise unusable_home(self.paths.root, exc) from None
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            pid = self.paths.owner()
            who = f"process {pid}" if pid else "another process"
            raise HomeLocked(
                f"{self.paths.root} is in use by {who}; stop it, or run this command while"
                " its node is serving so the command goes through the node",
                pid,
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        self._file = f
        return self

    def release(self) -> None:
        if self._file is not None:
            self._file.seek(0)
            self._file.truncate()
            self._file.flush()
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def __enter__(self) -> HomeLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"user {uid}"


def unusable_home(root: Path, exc: OSError) -> HomeError:
    """One line that says why this process cannot use the home at `root`, and the way out."""
    try:
        owner: int | None = root.stat().st_uid
    except OSError:
        owner = None
    me = os.geteuid()
    if owner is None and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return HomeError(f"cannot create the home {root} ({exc.strerror}); choose a directory"
                         " you can write to: `commons --home DIR init`")
    if owner is not None and owner != me and exc.errno in (errno.EACCES, errno.EPERM):
        return HomeError(
            f"{root} belongs to {_user(owner)}, and you are {_user(me)}: only its owner can"
            f" use it. Run commons as {_user(owner)}, or use a home of your own:"
            " `commons --home DIR init`"
        )
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return HomeError(
            f"{root} is read-only here ({exc.strerror}), and commons writes its lock and"
            f" database in it. Make it writable (`chmod -R u+w {root}`, or mount the disk"
            " read-write), or copy it to a writable place and use `commons --home COPY`;"
            " `commons check --salvage FILE` reads a read-only home"
        )
    if exc.errno == errno.ENOSPC:
        return HomeError(f"the disk holding {root} is full; free some space and try again")
    return HomeError(f"{root} cannot be used: {exc.strerror or exc}")


def create_identity(paths: HomePaths) -> Identity:
    paths.root.mkdir(parents=True, exist_ok=True)
    os.chmod(paths.root, 0o700)
    identity = Identity.generate()
    identity.save(paths.key)
    return identity
