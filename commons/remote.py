"""The API of a home that a running node owns, called over its local HTTP API.

`RemoteApi` has the same methods as `commons.api.LocalApi` and returns the
same plain JSON values; each call is a `POST /api/<method>` to the node (see
docs/sync.md), with the token from the home's node.json. Errors the node
raised come back as the same `CommonsError` subclasses, with the node's
message. Only the standard library is used: the core never imports aiohttp.
"""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any

from commons.ingest import Extracted
from commons.model import errors
from commons.model.errors import CommonsError

if TYPE_CHECKING:
    import urllib.error

JSON = dict[str, Any]
TIMEOUT = 600.0  # an `ask` with a local language model can take minutes


def _error_class(name: object) -> type[CommonsError]:
    cls = getattr(errors, name, None) if isinstance(name, str) else None
    if isinstance(cls, type) and issubclass(cls, CommonsError) and cls is not errors.HomeLocked:
        return cls
    return CommonsError


class RemoteApi:
    """The local API of a node running on this machine."""

    def __init__(
        self, api_url: str, token: str, *, timeout: float = TIMEOUT, node_url: str | None = None
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._token = token
        self.timeout = timeout
        self.node_url = node_url  # where the node gossips, for people to read

    @classmethod
    def from_node_info(cls, info: dict[str, Any]) -> RemoteApi:
        """From the contents of a home's node.json (`HomePaths.node_info()`)."""
        api_url, token = info.get("api_url"), info.get("token")
        if not isinstance(api_url, str) or not isinstance(token, str):
            raise CommonsError(
                "node.json in the home does not name the node's API; stop the node and start"
                " it again"
            )
        url = info.get("url")
        return cls(api_url, token, node_url=url if isinstance(url, str) else None)

    def call(self, method: str, **kwargs: Any) -> Any:
        """Run one API method on the node and return its result."""
        # Here, not at the top: every command imports this module, few call a node.
        import urllib.error
        import urllib.request

        body = json.dumps(_plain(kwargs)).encode("utf-8")
        request = urllib.request.Request(
            f"{self.api_url}/api/{method}",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self._token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise self._node_error(exc) from None
        except (TimeoutError, urllib.error.URLError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise CommonsError(
                f"the node that owns this home does not answer at {self.api_url} ({reason});"
                " if it crashed, start it again or run the command once it has stopped"
            ) from None
        except ValueError as exc:
            raise CommonsError(f"the node sent an answer that is not JSON: {exc}") from None
        if not isinstance(payload, dict) or "result" not in payload:
            raise CommonsError("the node sent an answer without a result")
        return payload["result"]

    def _node_error(self, exc: urllib.error.HTTPError) -> CommonsError:
        try:
            payload = json.loads(exc.read())
            message, kind = payload["error"], payload.get("type")
        except (ValueError, KeyError, TypeError, OSError):
            return CommonsError(f"the node answered HTTP {exc.code}: {exc.reason}")
        return _error_class(kind)(str(message))

    # -- the methods of LocalApi ------------------------------------------------

    def whoami(self) -> JSON:
        result: JSON = self.call("whoami")
        return result

    def add(
        self,
        extracted: Extracted,
        *,
        title: str | None,
        tags: list[str],
        licence: str | None,
        replaces: str | None,
    ) -> JSON:
        result: JSON = self.call(
            "add", extracted=extracted, title=title, tags=tags, licence=licence, replaces=replaces
        )
        return result

    def documents(self, *, author: str | None, tag: str | None) -> list[JSON]:
        result: list[JSON] = self.call("documents", author=author, tag=tag)
        return result

    def show(self, prefix: str) -> JSON:
        result: JSON = self.call("show", prefix=prefix)
        return result

    def retract(self, prefix: str, reason: str | None) -> JSON:
        result: JSON = self.call("retract", prefix=prefix, reason=reason)
        return result

    def search(self, query: str, *, limit: int = 20, author: str | None = None,
               tag: str | None = None) -> list[JSON]:
        result: list[JSON] = self.call("search", query=query, limit=limit, author=author, tag=tag)
        return result

    def set_name(self, name: str) -> JSON:
        result: JSON = self.call("set_name", name=name)
        return result

    def export(self, path: str, authors: list[str]) -> JSON:
        result: JSON = self.call("export", path=path, authors=authors)
        return result

    def import_bundle(self, path: str) -> JSON:
        result: JSON = self.call("import_bundle", path=path)
        return result

    def ask(
        self,
        question: str,
        *,
        k: int = 8,
        authors: list[str] = [],  # noqa: B006 (never mutated; the same shape as LocalApi)
        tags: list[str] = [],  # noqa: B006
        llm: str | None = None,
        model: str | None = None,
        gguf: str | None = None,
        llm_key: str | None = None,
    ) -> JSON:
        result: JSON = self.call(
            "ask", question=question, k=k, authors=authors, tags=tags, llm=llm, model=model,
            gguf=gguf, llm_key=llm_key,
        )
        return result

    def block(self, author: str, reason: str | None) -> JSON:
        result: JSON = self.call("block", author=author, reason=reason)
        return result

    def unblock(self, author: str) -> JSON:
        result: JSON = self.call("unblock", author=author)
        return result

    def blocked(self) -> list[JSON]:
        result: list[JSON] = self.call("blocked")
        return result

    def reindex(self) -> JSON:
        result: JSON = self.call("reindex")
        return result

    # -- the node's own methods -------------------------------------------------

    def peers(self) -> list[JSON]:
        result: list[JSON] = self.call("peers")
        return result

    def add_peer(self, url: str) -> JSON:
        result: JSON = self.call("add_peer", url=url)
        return result

    def remove_peer(self, url: str) -> JSON:
        result: JSON = self.call("remove_peer", url=url)
        return result

    def sync_now(self) -> list[JSON]:
        result: list[JSON] = self.call("sync_now")
        return result

    def sync_with(self, url: str) -> JSON:
        result: JSON = self.call("sync_with", url=url)
        return result

    def status(self) -> JSON:
        result: JSON = self.call("status")
        return result


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
