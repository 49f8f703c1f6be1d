"""Read-only web pages a node serves beside its gossip endpoints (`--web`)."""

from __future__ import annotations

from sync.web.gate import GateLimits
from sync.web.pages import WebConfig, mount

__all__ = ["GateLimits", "WebConfig", "mount"]
