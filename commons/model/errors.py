"""Errors a person can act on.

Every error raised by the core carries a message that says what went wrong and,
where there is one, what to do about it. The CLI prints it to stderr and exits
non-zero; the TUI shows it as a notification; a peer gets it as an HTTP reason.
"""

from __future__ import annotations


class CommonsError(Exception):
    """Base of every error the core raises on purpose."""


class Refused(CommonsError):
    """An object was not stored. Nothing already stored was touched."""


class InvalidObject(Refused):
    """The object is malformed, badly signed, or breaks a limit.

    A peer that sends one of these is misbehaving (or broken).
    """


class Withdrawn(Refused):
    """The object was retracted by its author; it is not stored again.

    Not a fault of the sender: it may simply not have seen the retraction yet.
    """


class StoreError(CommonsError):
    """The store cannot be opened or written."""


class NotFound(CommonsError):
    """No stored object matches."""


class AmbiguousId(CommonsError):
    """An id prefix matches more than one object."""


class HomeError(CommonsError):
    """The home directory is missing, unreadable, or unsafe."""


class HomeLocked(HomeError):
    """Another process owns the home."""

    def __init__(self, message: str, pid: int | None) -> None:
        super().__init__(message)
        self.pid = pid


class IdentityError(HomeError):
    """The secret key file is missing, malformed, or readable by others."""


class IngestError(CommonsError):
    """A file could not be read or turned into text."""
