"""LAN discovery over mDNS/DNS-SD (zeroconf): announce this node, find others.

A node announces `_commons._tcp` with TXT properties `key` (its public key,
hex), `name` and `mirror` ("1" or "0"), and browses for the same type. Each
node it finds is handed to `on_found` as a candidate peer: nothing here is
trusted. A TXT record is anyone's claim on the local network; the address is a
candidate until the node there proves it holds the key (the gossip layer's
job), and the values are checked for shape before they are passed on.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import ifaddr  # zeroconf's own dependency
from zeroconf import IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

log = logging.getLogger(__name__)

SERVICE_TYPE = "_commons._tcp.local."
RESOLVE_MS = 3000
MAX_NAME = 60
_KEY = re.compile(r"\A[0-9a-f]{64}\Z")
_LABEL_UNSAFE = re.compile(r"[^0-9A-Za-z-]+")


@dataclass(frozen=True)
class Found:
    """A node seen on the LAN: where it says it listens and what it says it is."""

    url: str
    key: str
    name: str | None
    mirror: bool


def instance_name(name: str | None, key: str) -> str:
    label = _LABEL_UNSAFE.sub("-", name or "commons").strip("-")[:40] or "commons"
    return f"{label}-{key[:8]}.{SERVICE_TYPE}"


def parse_found(properties: dict[bytes, bytes | None], addresses: Sequence[str],
                port: int | None) -> list[Found]:
    """Candidate peers from one resolved announcement (none if it is malformed)."""
    key = (properties.get(b"key") or b"").decode("ascii", "replace")
    if not _KEY.match(key) or not port or not 0 < port < 65536:
        return []
    raw_name = (properties.get(b"name") or b"").decode("utf-8", "replace")
    name = "".join(c for c in raw_name if c.isprintable())[:MAX_NAME] or None
    mirror = properties.get(b"mirror") == b"1"
    found = []
    for address in addresses:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            continue
        if ip.version != 4 or ip.is_unspecified or ip.is_multicast:
            continue
        found.append(Found(f"http://{ip}:{port}", key, name, mirror))
    return found


class Discovery:
    """Announces one node and reports the others, until `stop`."""

    def __init__(self, *, key: str, name: str | None, mirror: bool, port: int,
                 addresses: Sequence[str], on_found: Callable[[Found], None],
                 interfaces: Sequence[str] | None = None) -> None:
        self.key = key
        self.on_found = on_found
        self._interfaces = list(interfaces) if interfaces else None
        self._info = AsyncServiceInfo(
            SERVICE_TYPE, instance_name(name, key), port=port,
            properties={"key": key, "name": (name or "")[:MAX_NAME],
                        "mirror": "1" if mirror else "0", "v": "1"},
            parsed_addresses=list(addresses),
        )
        self._zc: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        if self._interfaces:
            self._zc = AsyncZeroconf(interfaces=self._interfaces, ip_version=IPVersion.V4Only)
        else:
            self._zc = AsyncZeroconf(ip_version=IPVersion.V4Only)
        await self._zc.async_register_service(self._info, allow_name_change=True)
        self._browser = AsyncServiceBrowser(self._zc.zeroconf, [SERVICE_TYPE],
                                            handlers=[self._on_change])

    def _on_change(self, zeroconf: Zeroconf, service_type: str, name: str,
                   state_change: ServiceStateChange) -> None:
        if state_change in (ServiceStateChange.Added, ServiceStateChange.Updated):
            task = asyncio.ensure_future(self._resolve(service_type, name))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _resolve(self, service_type: str, name: str) -> None:
        if self._zc is None:
            return
        info = AsyncServiceInfo(service_type, name)
        try:
            if not await info.async_request(self._zc.zeroconf, RESOLVE_MS):
                return
        except Exception as exc:  # a malformed answer from the network
            log.info("could not resolve %s: %s", name, exc)
            return
        for found in parse_found(info.properties or {},
                                 info.parsed_addresses(IPVersion.V4Only), info.port):
            if found.key == self.key:
                continue
            try:
                self.on_found(found)
            except Exception:
                log.exception("taking in a discovered node failed")

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._browser is not None:
            await self._browser.async_cancel()
            self._browser = None
        if self._zc is not None:
            await self._zc.async_unregister_all_services()
            await self._zc.async_close()
            self._zc = None


def lan_addresses(host: str, advertise: Sequence[str]) -> list[str]:
    """The IPv4 addresses to announce: the listen address, or every non-loopback
    address of this machine when listening on all of them (0.0.0.0)."""
    candidates: list[str] = []
    if advertise:
        candidates = [urlsplit(u).hostname or "" for u in advertise]
    elif host in ("0.0.0.0", ""):
        candidates = [str(ip.ip) for adapter in ifaddr.get_adapters() for ip in adapter.ips
                      if isinstance(ip.ip, str)]
    else:
        candidates = [host]
    out = []
    for candidate in candidates:
        try:
            ip = ipaddress.ip_address(candidate)
        except ValueError:
            continue
        if ip.version == 4 and not ip.is_loopback and not ip.is_unspecified:
            out.append(str(ip))
    return sorted(set(out))
