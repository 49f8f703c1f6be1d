"""The node's local API: how `commons add`, `ls`, `ask`... reach a home a node owns.

`POST /api/<method>` with a JSON object of keyword arguments calls that method
of `commons.api.LocalApi` (or one of the node's own: peers, add_peer,
remove_peer, sync_now, sync_with, status) and answers `{"result": ...}`, or
`{"error": message, "type": error class}` with a 4xx/5xx status. It listens
on a loopback address only, and every request must carry the random token
the node wrote to the home's node.json (readable by its owner only).
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import hmac
import inspect
import json
import logging
import sqlite3
import types
import typing
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from commons.api import CommonsApi
from commons.model.errors import AmbiguousId, CommonsError, NotFound, StoreError
from sync.api import NodeApi

log = logging.getLogger(__name__)


class ServedNode(NodeApi, Protocol):
    """What the local API needs from the node beside its own methods."""

    async def index_ready(self) -> None:
        """Wait until the search index has caught up."""
        ...


class BadArguments(CommonsError):
    """The arguments of a local API call do not fit the method."""


MAX_API_BODY = 64 * 1024 * 1024  # an added document's text can be large
# LocalApi methods that never touch the search index; every other one (ask, add,
# reindex, and any added later) waits until the index has caught up after start.
NO_INDEX_NEEDED = frozenset({"whoami", "documents", "show", "retract", "export", "import_bundle",
                             "block", "unblock", "blocked", "set_name"})
NODE_METHODS = ("peers", "add_peer", "remove_peer", "sync_now", "sync_with", "status")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def to_jsonable(value: Any) -> Any:
    """Plain JSON values from what API methods return."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    return value


def _error(status: int, exc: BaseException | str, kind: str | None = None) -> web.Response:
    message = str(exc)
    name = kind or (type(exc).__name__ if isinstance(exc, BaseException) else "CommonsError")
    return web.json_response({"error": message, "type": name}, status=status)


def _convert(fn: Callable[..., Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Rebuild dataclass arguments (like `Extracted`) from their JSON objects."""
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # an annotation we cannot resolve: pass values as they are
        return kwargs
    out = dict(kwargs)
    for name, value in kwargs.items():
        hint = hints.get(name)
        if isinstance(hint, type) and dataclasses.is_dataclass(hint) and isinstance(value, dict):
            out[name] = hint(**value)
    return out


def fits(value: Any, hint: Any) -> bool:
    """Whether a JSON value fits a parameter's annotation (str, int, list[str], X | None...).

    Annotations this does not understand accept anything: the method checks.
    """
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(fits(value, arg) for arg in typing.get_args(hint))
    if origin in (list, tuple, set, frozenset):
        args = typing.get_args(hint)
        return isinstance(value, list) and all(fits(v, args[0]) for v in value if args)
    if origin is dict:
        return isinstance(value, dict)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint in (str, dict, list):
        return isinstance(value, hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        try:
            fields = typing.get_type_hints(hint)
        except Exception:
            fields = {}
        return isinstance(value, hint) and all(
            fits(getattr(value, f.name), fields.get(f.name, Any))
            for f in dataclasses.fields(hint)
        )
    return True


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def bind_arguments(method: str, fn: Callable[..., Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The call's keyword arguments, checked against `fn`'s signature and types before it runs.

    Only a mismatch found here is the caller's "bad arguments": a TypeError
    raised later, inside the method, is the node's failure.
    """
    try:
        kwargs = _convert(fn, kwargs)
        inspect.signature(fn).bind(**kwargs)
    except TypeError as exc:
        raise BadArguments(f"bad arguments for {method}: {exc}") from exc
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # an annotation we cannot resolve: the method checks
        hints = {}
    for name, value in kwargs.items():
        if name in hints and not fits(value, hints[name]):
            raise BadArguments(
                f"bad arguments for {method}: {name!r} must be {_type_name(hints[name])},"
                f" not {type(value).__name__} {json.dumps(value, default=repr)[:40]}"
            )
    return kwargs


def _url_argument(method: str, kwargs: dict[str, Any]) -> str:
    if "url" not in kwargs:
        raise BadArguments(f"{method} needs the argument 'url'")
    url = kwargs["url"]
    if not isinstance(url, str):
        raise BadArguments(
            f"bad arguments for {method}: 'url' must be a string like \"http://HOST:7400\","
            f" not {type(url).__name__}"
        )
    extra = sorted(set(kwargs) - {"url"})
    if extra:
        raise BadArguments(f"bad arguments for {method}: unexpected argument {extra[0]!r}")
    return url


class LocalApiServer:
    def __init__(self, node: ServedNode, api: CommonsApi, token: str) -> None:
        self.node = node
        self.api = api
        self.token = token
        # One call at a time: the facade and its indexes are shared with the
        # gossip, and people type commands far slower than this serves them.
        self._lock = asyncio.Lock()

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_API_BODY, middlewares=[self._auth])
        app.router.add_post("/api/{method}", self.call)
        return app

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
            return _error(401, "missing or wrong token; read it from the home's node.json",
                          "CommonsError")
        return await handler(request)

    async def call(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        try:
            kwargs = await request.json() if request.can_read_body else {}
        except ValueError:
            return _error(400, "the request body must be a JSON object of arguments")
        if not isinstance(kwargs, dict):
            return _error(400, "the request body must be a JSON object of arguments")
        try:
            if method in NODE_METHODS:
                result = await self._node_call(method, kwargs)
            else:
                result = await self._api_call(method, kwargs)
        except (NotFound, AmbiguousId) as exc:
            return _error(404, exc)
        except BadArguments as exc:
            return _error(400, exc, "CommonsError")
        except StoreError as exc:  # ours, not the caller's: a damaged or full store
            log.exception("local API call %s failed", method)
            return _error(503, exc)
        except CommonsError as exc:
            return _error(400, exc)
        except (sqlite3.Error, OSError) as exc:  # a full disk, a vanished index directory
            log.exception("local API call %s failed", method)
            return _error(503, f"the node cannot run {method} now: {exc}", "StoreError")
        except Exception as exc:  # a TypeError or KeyError inside the method is ours too
            log.exception("local API call %s failed", method)
            return _error(500, f"the node failed to run {method}: {exc}", "CommonsError")
        return web.json_response({"result": to_jsonable(result)})

    async def _api_call(self, method: str, kwargs: dict[str, Any]) -> Any:
        fn = getattr(self.api, method, None) if not method.startswith("_") else None
        if fn is None or not callable(fn):
            raise NotFound(f"the node has no API method {method!r}; is it a newer version?")
        kwargs = bind_arguments(method, fn, kwargs)
        if method not in NO_INDEX_NEEDED:  # `ls` need not wait for a large catch-up
            await self.node.index_ready()
        async with self._lock:
            return await asyncio.to_thread(fn, **kwargs)

    async def _node_call(self, method: str, kwargs: dict[str, Any]) -> Any:
        node = self.node
        if method == "peers":
            return [p.to_json() for p in node.peers()]
        if method == "add_peer":
            return (await node.add_peer(_url_argument(method, kwargs))).to_json()
        if method == "remove_peer":
            return {"removed": node.remove_peer(_url_argument(method, kwargs))}
        if method == "sync_now":
            return [r.to_json() for r in await node.sync_now()]
        if method == "sync_with":
            return (await node.sync_with(_url_argument(method, kwargs))).to_json()
        return await node.status()
