"""What every screen of the app shares: the backend, error reports, the nav bar."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from textual.message import Message
from textual.screen import Screen

from commons.model.errors import CommonsError
from tui.backend import Backend

log = logging.getLogger(__name__)


class CommonsScreen(Screen[None]):
    """A screen over the backend. Workers report failures with `Failed`."""

    class Failed(Message):
        """A background action failed; the message says what to do."""

        def __init__(self, action: str, error: str) -> None:
            super().__init__()
            self.action = action
            self.error = error

    def __init__(self, backend: Backend, *, name: str | None = None, id: str | None = None) -> None:
        super().__init__(name=name, id=id)
        self.backend = backend

    @contextmanager
    def reporting(self, action: str) -> Iterator[None]:
        """Turn an error inside a worker into a notification instead of a crash.

        CommonsError and OSError carry messages a person can act on; anything
        else is a bug, logged in full and reported as one.
        """
        try:
            yield
        except (CommonsError, OSError, ValueError) as exc:
            self.post_message(self.Failed(action, str(exc)))
        except Exception as exc:
            log.exception("%s failed", action)
            self.post_message(
                self.Failed(action, f"unexpected error ({type(exc).__name__}: {exc}); run"
                            " `commons -vv` to see the details and please report it")
            )

    def on_commons_screen_failed(self, message: CommonsScreen.Failed) -> None:
        self.notify(message.error, title=f"{message.action} failed", severity="error", timeout=8)
