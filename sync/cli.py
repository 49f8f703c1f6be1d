"""The sync layer's commands: serve, mirror, peers ls/add/rm, sync."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from typing import TYPE_CHECKING, Any, Protocol

from commons.cli import Context, command, json_flag
from commons.cli.output import print_json
from commons.display import fmt_datetime
from commons.model.errors import CommonsError, NotFound
from commons.remote import RemoteApi
from commons.service import Commons
from sync.display import peer_state
from sync.gossip.peers import PeerTable, load_rows, normalise_url, save_rows
from sync.gossip.policy import INGRESS_KEYS, Policy

if TYPE_CHECKING:
    from sync.http.node import Node
    from sync.web import WebConfig


DEFAULT_LISTEN = "127.0.0.1:7400"
MIRROR_LISTEN = "0.0.0.0:7400"


class NodeContext(Context, Protocol):
    """What the sync commands need from the composition root, besides the core's."""

    def open_commons(self) -> Commons:
        """Own the existing home, with the vector index where the settings put it."""
        ...

    def node(self, commons: Commons, **options: Any) -> Node:
        """A node over `commons` (options: listen, peers, policy, round_interval, name,
        mirror, advertise)."""
        ...


def _node_flags(parser: argparse.ArgumentParser, *, name: bool = True) -> None:
    """Options `serve` and `mirror` share."""
    parser.add_argument(
        "--interval",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="seconds between gossip rounds (default 30)",
    )
    parser.add_argument(
        "--advertise",
        action="append",
        default=[],
        metavar="URL",
        help="the address peers should use to reach this node (repeatable; default: --listen)",
    )
    if name:
        parser.add_argument("--name", help="this node's public name in its peer record")
    web = parser.add_argument_group("web pages")
    web.add_argument("--web-answers", type=int, default=None, metavar="N",
                     help="answers computed at once (default: the number of CPUs)")
    web.add_argument("--web-queue", type=int, default=None, metavar="N",
                     help="answers waiting for a turn before 503 (default: 4 per CPU)")
    web.add_argument("--web-rate", type=float, default=30.0, metavar="PER_MINUTE",
                     help="questions and searches per minute from one address (default 30)")
    ingress = parser.add_argument_group(
        "ingress budget (objects taken in from peers; docs/sync.md)")
    ingress.add_argument("--ingress-per-peer", metavar="N/PERIOD",
                         help="objects one peer key may bring in, e.g. 600/minute"
                              " (default: the policy's, else 6000/hour)")
    ingress.add_argument("--ingress-bytes-per-peer", metavar="SIZE/PERIOD",
                         help="bytes of objects one peer key may bring in, e.g. 50MB/hour"
                              " (default: the policy's, else 300MB/hour)")
    ingress.add_argument("--ingress-total", metavar="N/PERIOD",
                         help="objects all peers together may bring in"
                              " (default: the policy's, else 20000/hour)")
    ingress.add_argument("--ingress-bytes-total", metavar="SIZE/PERIOD",
                         help="bytes of objects all peers together may bring in"
                              " (default: the policy's, else 1GB/hour)")
    parser.add_argument("--no-discovery", dest="discovery", action="store_false",
                        help="neither announce this node nor look for others on the LAN (mDNS)")


def register(sub: Any) -> None:
    p = command(sub, "serve", "sync.cli:serve", "run a node: gossip and the local API")
    p.add_argument("--listen",
                   help=f"HOST:PORT (default: the `listen` setting, else {DEFAULT_LISTEN})")
    p.add_argument("--peer", action="append", default=[], dest="peers", help="a peer URL")
    p.add_argument("--index-url", help="keep vectors in a Chroma server at this URL")
    p.add_argument("--web", action="store_true",
                   help="also serve the read-only web pages (library, search, answers)")
    _node_flags(p)

    p = command(sub, "mirror", "sync.cli:mirror", "run an always-on community mirror")
    p.add_argument("--listen",
                   help=f"HOST:PORT (default: the `listen` setting, else {MIRROR_LISTEN})")
    p.add_argument("--peer", action="append", default=[], dest="peers", help="a peer URL")
    p.add_argument("--policy", metavar="FILE",
                   help="the accept policy (JSON; default: the `policy` setting)")
    p.add_argument("--name", help="the mirror's public name")
    p.add_argument("--index-url", help="keep vectors in a Chroma server at this URL")
    p.add_argument("--web", action="store_true",
                   help="also serve the read-only web pages (library, search, answers)")
    _node_flags(p, name=False)

    peers = command(sub, "peers", "sync.cli:peers_ls", "list, add or remove peers")
    peer_sub = peers.add_subparsers(title="peer commands", metavar="ACTION")
    p = command(peer_sub, "ls", "sync.cli:peers_ls", "list known peers")
    json_flag(p)
    peers.set_defaults(json=False)
    p = command(peer_sub, "add", "sync.cli:peers_add", "add a peer by URL")
    p.add_argument("url", metavar="URL")
    p = command(peer_sub, "rm", "sync.cli:peers_rm", "remove a peer")
    p.add_argument("url", metavar="URL")

    p = command(sub, "sync", "sync.cli:sync_once", "reconcile once with one peer, then exit")
    p.add_argument("url", metavar="URL")
    json_flag(p)


# -- serve and mirror ---------------------------------------------------------


def serve(args: argparse.Namespace, ctx: NodeContext) -> int:
    return _run(args, ctx, mirror=False)


def mirror(args: argparse.Namespace, ctx: NodeContext) -> int:
    return _run(args, ctx, mirror=True)


def _run(args: argparse.Namespace, ctx: NodeContext, *, mirror: bool) -> int:
    settings = ctx.settings  # flags, else the home's config.toml
    policy = Policy.load(settings.policy) if mirror and settings.policy else None
    budgets = {key: getattr(args, key) for key in INGRESS_KEYS
               if getattr(args, key, None) is not None}
    if budgets:
        policy = (policy or Policy()).with_ingress(budgets, where="mirror" if mirror else "serve")
    listen = settings.listen or (MIRROR_LISTEN if mirror else DEFAULT_LISTEN)
    if args.interval <= 0:
        raise CommonsError("--interval must be a positive number of seconds")
    with ctx.open_commons() as commons:
        node = ctx.node(
            commons,
            listen=listen,
            peers=list(settings.peers),
            policy=policy,
            round_interval=args.interval,
            name=getattr(args, "name", None),
            mirror=mirror,
            advertise=args.advertise,
            web_pages=_web_config(args, ctx),
            discovery=args.discovery,
        )
        import asyncio  # here: `commons ask` and the like never need it

        asyncio.run(_serve(node))
    return 0


def _web_config(args: argparse.Namespace, ctx: NodeContext) -> WebConfig | None:
    if not args.web:
        return None
    from sync.web import GateLimits, WebConfig

    cpus = os.cpu_count() or 1
    answers = args.web_answers if args.web_answers is not None else cpus
    queue = args.web_queue if args.web_queue is not None else 4 * answers
    if answers < 1 or queue < 0 or args.web_rate <= 0:
        raise CommonsError("--web-answers must be 1 or more, --web-queue 0 or more and"
                           " --web-rate a positive number")
    url, model, gguf = ctx.settings.llm.choose(None, None, None)  # as `commons ask` with no flags
    return WebConfig.build(
        GateLimits(concurrency=answers, queue=queue, per_minute=args.web_rate,
                   burst=max(3, round(args.web_rate / 6))),
        time.monotonic,
        {"llm": url, "model": model, "gguf": gguf, "llm_key": ctx.settings.llm.key},
    )
async def _serve(node: Node) -> None:
    try:
        await node.start()
    except OSError as exc:
        await node.stop()
        raise CommonsError(f"cannot listen on {node.host}:{node.port}: {exc.strerror}") from exc
    what = "mirror" if node.mirror else "node"
    pages = f"; web pages at {node.url}/" if node.web_pages is not None else ""
    print(f"{what} serving at {node.url} (local API {node.api_url}){pages}; Ctrl-C stops it",
          flush=True)
    import asyncio

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


def peers_ls(args: argparse.Namespace, ctx: NodeContext) -> int:
    with ctx.open_owner() as home:
        if isinstance(home, RemoteApi):
            rows = home.peers()
        else:
            rows = [p.to_json() for p in _local_table(home).all()]
    if args.json:
        print_json(rows)
        return 0
    rows = [p for p in rows if p["state"] != "removed"]  # removed by you: gone from view
    if not rows:
        print("no peers yet; add one with `commons peers add http://HOST:7400`")
        return 0
    for p in rows:
        flags = " mirror" if p["mirror"] else ""
        seen = fmt_datetime(p["last_seen"], missing="never")
        print(
            f"{p['url']:32} {(p['name'] or '?')[:20]:20} {peer_state(p):26}"
            f"  seen {seen}  sent {p['sent']}  received {p['received']}{flags}"
        )
    return 0


def peers_add(args: argparse.Namespace, ctx: NodeContext) -> int:
    url = normalise_url(args.url)
    with ctx.open_owner() as home:
        if isinstance(home, RemoteApi):
            home.add_peer(url)
        else:
            table = _local_table(home)
            if table.add(url, source="manual", now=ctx.clock()) is None:
                raise CommonsError(f"{url} is this home's own node")
            save_rows(home.store, *table.pending_rows())
    print(f"added {url}")
    problem = reachability(url)
    if problem:
        print(
            f"warning: {problem}; it stays among your peers and is tried again with"
            f" back-off (`commons peers rm {url}` removes it)",
            file=sys.stderr,
        )
    return 0


def reachability(url: str, timeout: float = 3.0) -> str | None:
    """Why `url` does not look like a commons node now, or None if its /status answers."""
    import urllib.error  # here: `commons ask` and the like never need it
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/status", timeout=timeout) as response:
            json.loads(response.read(65536))
    except urllib.error.HTTPError as exc:
        return f"{url} answers, but not as a commons node (HTTP {exc.code} for /status)"
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        text = getattr(reason, "strerror", None) or str(reason)
        return f"nothing answers at {url} now ({text})"
    except ValueError:
        return f"{url} answers, but not as a commons node (its /status is not JSON)"
    return None


def peers_rm(args: argparse.Namespace, ctx: NodeContext) -> int:
    url = normalise_url(args.url)
    with ctx.open_owner() as home:
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


def sync_once(args: argparse.Namespace, ctx: NodeContext) -> int:
    url = normalise_url(args.url)
    with ctx.open_owner() as home:
        if isinstance(home, RemoteApi):
            known = {p["url"] for p in home.peers()}
            result = home.sync_with(url)
            known_after = {p["url"] for p in home.peers()}
        else:
            known = {p.url for p in _local_table(home).all()}
            import asyncio

            result = asyncio.run(_sync_once(ctx, home, url))
            known_after = {p.url for p in _local_table(home).all()}
    if args.json:
        print_json(result)
    if result["error"]:
        raise CommonsError(result["error"])
    if not args.json:
        print(
            f"{url}: fetched {result['fetched']}, pushed {result['pushed']}"
            f" in {result['round_trips']} round trips"
            + (f"; {result['declined']} declined by policy" if result["declined"] else "")
        )
        if url not in known and url in known_after:
            print(f"{url} is now among your peers; `commons peers rm {url}` removes it")
        elif url not in known:
            print(f"{url} was not added to your peers; `commons peers add {url}` adds it")
    return 0


async def _sync_once(ctx: NodeContext, commons: Commons, url: str) -> dict[str, Any]:
    node = ctx.node(commons)
    try:
        return (await node.sync_with(url)).to_json()
    finally:
        await node.stop()
