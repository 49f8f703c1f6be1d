"""Handlers of the sync commands: serve, mirror, peers ls/add/rm, sync."""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import sys
import time
from datetime import UTC, datetime
from typing import Any

from commons.commands import open_owner
from commons.errors import CommonsError, NotFound
from commons.home import HomePaths, default_home
from commons.remote import RemoteApi
from commons.service import Commons
from sync.node import Node
from sync.peers import PeerTable, load_rows, normalise_url, save_rows
from sync.policy import Policy


def now() -> int:
    return int(time.time())


def _paths(args: argparse.Namespace) -> HomePaths:
    paths = HomePaths(default_home(args.home))
    paths.require()
    return paths


def open_commons(paths: HomePaths, index_url: str | None = None) -> Commons:
    """Own the home, with the vector index in a Chroma server if `index_url` is given."""
    return Commons(paths, clock=now, index_url=index_url or None)


def _print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2)
    sys.stdout.write("\n")


# -- serve and mirror ---------------------------------------------------------


def serve(args: argparse.Namespace) -> int:
    return _run(args, mirror=False)


def mirror(args: argparse.Namespace) -> int:
    return _run(args, mirror=True)


def _run(args: argparse.Namespace, *, mirror: bool) -> int:
    paths = _paths(args)
    policy = Policy.load(args.policy) if getattr(args, "policy", None) else None
    if args.interval <= 0:
        raise CommonsError("--interval must be a positive number of seconds")
    with open_commons(paths, args.index_url) as commons:
        node = Node(
            commons,
            listen=args.listen,
            peers=args.peers,
            policy=policy,
            rng=random.Random(),
            clock=now,
            round_interval=args.interval,
            name=getattr(args, "name", None),
            mirror=mirror,
            advertise=args.advertise,
        )
        asyncio.run(_serve(node))
    return 0


async def _serve(node: Node) -> None:
    try:
        await node.start()
    except OSError as exc:
        await node.stop()
        raise CommonsError(f"cannot listen on {node.host}:{node.port}: {exc.strerror}") from exc
    what = "mirror" if node.mirror else "node"
    print(f"{what} serving at {node.url} (local API {node.api_url}); Ctrl-C stops it", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await node.stop()
    print(f"{what} stopped", flush=True)


# -- peers ----------------------------------------------------------------------


def _local_table(commons: Commons) -> PeerTable:
    return PeerTable(load_rows(commons.store), own_key=commons.public_key)


def _when(ts: int | None) -> str:
    if ts is None:
        return "never"
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M")


def peers_ls(args: argparse.Namespace) -> int:
    with open_owner(args) as home:
        if isinstance(home, RemoteApi):
            rows = home.peers()
        else:
            rows = [p.to_json() for p in _local_table(home).all()]
    if args.json:
        _print_json(rows)
        return 0
    if not rows:
        print("no peers yet; add one with `commons peers add http://HOST:7400`")
        return 0
    for p in rows:
        flags = " mirror" if p["mirror"] else ""
        state = "" if p["state"] == "active" else f" [{p['state']}]"
        print(
            f"{p['url']:32} {(p['name'] or '?')[:20]:20} health {p['health']:.2f}"
            f"  seen {_when(p['last_seen'])}  sent {p['sent']}  received {p['received']}"
            f"{flags}{state}"
        )
    return 0


def peers_add(args: argparse.Namespace) -> int:
    url = normalise_url(args.url)
    with open_owner(args) as home:
        if isinstance(home, RemoteApi):
            home.add_peer(url)
        else:
            table = _local_table(home)
            if table.add(url, source="manual", now=now()) is None:
                raise CommonsError(f"{url} is this home's own node")
            save_rows(home.store, *table.pending_rows())
    print(f"added {url}")
    return 0


def peers_rm(args: argparse.Namespace) -> int:
    url = normalise_url(args.url)
    with open_owner(args) as home:
        if isinstance(home, RemoteApi):
            removed = bool(home.remove_peer(url)["removed"])
        else:
            table = _local_table(home)
            removed = table.remove(url)
            save_rows(home.store, *table.pending_rows())
    if not removed:
        raise NotFound(f"{url} is not among the peers; `commons peers ls` lists them")
    print(f"removed {url}")
    return 0


# -- sync once ------------------------------------------------------------------


def sync_once(args: argparse.Namespace) -> int:
    url = normalise_url(args.url)
    with open_owner(args) as home:
        if isinstance(home, RemoteApi):
            result = home.sync_with(url)
        else:
            result = asyncio.run(_sync_once(home, url))
    if args.json:
        _print_json(result)
    if result["error"]:
        raise CommonsError(result["error"])
    if not args.json:
        print(
            f"{url}: fetched {result['fetched']}, pushed {result['pushed']}"
            f" in {result['round_trips']} round trips"
            + (f"; {result['declined']} declined by policy" if result["declined"] else "")
        )
    return 0


async def _sync_once(commons: Commons, url: str) -> dict[str, Any]:
    node = Node(commons, rng=random.Random(), clock=now)
    try:
        return (await node.sync_with(url)).to_json()
    finally:
        await node.stop()
