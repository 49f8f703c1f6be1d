"""Where a node listens and how others find it: addresses, node.json, its peer record.

The blocking functions here (node.json, the peer record) run in a worker
thread; `serve_app` runs in the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from aiohttp import web

from commons.model.errors import CommonsError
from commons.model.objects import PeerRecord
from commons.service import Commons
from commons.storage.home import HomePaths

log = logging.getLogger(__name__)


T = TypeVar("T")


def in_daemon_thread(work: Callable[[], T], *, name: str) -> asyncio.Future[T]:
    """Run blocking `work` in a daemon thread; its result as a future of the running loop.

    Unlike `asyncio.to_thread`, the loop does not wait for it when it closes: opening
    the search index (seconds of imports) must not hold up a node that is stopping.
    The home's `close()` makes such work give up instead of touching a closed store.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        try:
            result, error = work(), None
        except BaseException as exc:  # handed to whoever awaits the future
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is waiting
            loop.call_soon_threadsafe(settle, result, error)

    future.add_done_callback(lambda f: f.cancelled() or f.exception())  # never "unretrieved"
    threading.Thread(target=run, name=name, daemon=True).start()
    return future


def parse_listen(listen: str) -> tuple[str, int]:
    """HOST:PORT (or [IPv6]:PORT) to its parts; port 0 picks a free port."""
    host, sep, port = listen.strip().rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise CommonsError(f"--listen {listen!r} must be HOST:PORT, e.g. 127.0.0.1:7400")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


def is_unspecified(host: str) -> bool:
    return host in ("0.0.0.0", "::", "")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def http_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def own_urls(host: str, port: int, advertise: Sequence[str]) -> tuple[str, set[str]]:
    """The URL we give peers, and every URL that reaches this node (never a peer)."""
    local_host = "127.0.0.1" if is_unspecified(host) else host
    url = advertise[0] if advertise else http_url(local_host, port)
    own = {url, http_url(local_host, port), http_url("127.0.0.1", port),
           http_url("localhost", port), *advertise}
    return url, own


STOP_GRACE_S = 2.0  # what a stop grants the requests in flight and our own tasks


async def serve_app(app: web.Application, host: str, port: int,
                    runners: list[web.AppRunner]) -> int:
    """Serve `app` on host:port; returns the bound port. The runner joins `runners` at
    once, so whoever cleans them up also cleans up after a failed bind."""
    # At stop, requests still in flight get this long to finish, then are cancelled:
    # a stop never waits on a slow or stuck peer.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=STOP_GRACE_S)
    await runner.setup()
    runners.append(runner)
    await web.TCPSite(runner, host, port).start()
    return int(runner.addresses[0][1])


def write_node_info(paths: HomePaths, info: dict[str, Any]) -> None:
    """node.json, readable by its owner only (it holds the local API's token)."""
    path = paths.node
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(info, f)
    os.replace(tmp, path)


def remove_node_info(paths: HomePaths, token: str | None) -> None:
    """Remove node.json if it is still ours (another node may have taken the home since)."""
    info = paths.node_info()
    if info is not None and info.get("token") == token:
        paths.node.unlink(missing_ok=True)


def publish_record(commons: Commons, *, addresses: list[str], name: str | None, mirror: bool,
                   now: int, host: str, port: int) -> None:
    """Sign a peer record with our addresses, unless the newest one already says the same."""
    if not addresses:
        log.warning(
            "listening on %s without --advertise: peers cannot learn this node's address;"
            " pass --advertise http://YOUR-ADDRESS:%d", host, port
        )
        return
    me = commons.public_key
    name = (name or commons.name_of(me) or "commons node")[:64]
    mine = commons.store.objects(kind="peer", author=me, heads_only=False)
    if mine:
        last = mine[-1].obj.content
        if isinstance(last, PeerRecord) and (
            list(last.addresses), last.name, last.mirror
        ) == (addresses, name, mirror):
            return
    commons.publish(PeerRecord(author=me, created_at=now, addresses=tuple(addresses), name=name,
                               mirror=mirror))
