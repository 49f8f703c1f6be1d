"""The two ways a sync protocol exchange can go wrong.

Like any sans-IO protocol object, the sync code can only fail in two ways:
the caller used it wrongly, or the peer sent bytes that break the protocol.
Keeping them apart lets a transport drop a misbehaving peer without hiding
its own bugs.
"""

from __future__ import annotations


class ProtocolError(Exception):
    """Base of every error the sync protocols raise on purpose."""


class LocalProtocolError(ProtocolError):
    """We used the API wrongly (bad argument, call out of order).

    A bug on our side; nothing the peer did can cause it.
    """


class RemoteProtocolError(ProtocolError):
    """The peer sent bytes that break the protocol.

    The exchange cannot go on; the peer is misbehaving or broken. Any input
    from a peer, however malformed, raises this and nothing else.
    """
