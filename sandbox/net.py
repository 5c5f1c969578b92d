"""Network helpers every listener shares: starting and stopping, budgets, socket options.

SMTP, POP3 and IMAP (and the relay's client side) use these, so no protocol package
imports another for them. Nothing here knows a protocol: callers bring their own
protocol factory or stream handler and their own refusal text.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

Address = tuple[str, int]

# asyncio's default backlog of 100 drops a burst of connects: the client sees a
# connection the server never accepted, and waits for a greeting that never comes.
MIN_BACKLOG = 128


class ConnectionBudget:
    """How many connections one listener holds at once; the next is refused and closed."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0

    def take(self) -> bool:
        if self.active >= self.limit:
            return False
        self.active += 1
        return True

    def give_back(self) -> None:
        self.active -= 1


class AcceptedConnections:
    """Every connection a listener accepted, by transport, until its socket is closed.

    Python 3.11's ``Server.close()`` leaves accepted connections open, and a protocol can
    lose sight of its socket while it is still open (STARTTLS hands the socket to an SSL
    layer, whose polite shutdown waits for the peer). Holding the transports here and
    aborting whatever is still open at shutdown means no socket outlives the event loop.
    """

    def __init__(self) -> None:
        self._transports: set[asyncio.BaseTransport] = set()

    def add(self, transport: asyncio.BaseTransport) -> None:
        self._transports = {t for t in self._transports if _socket_open(t)}
        self._transports.add(transport)

    def __len__(self) -> int:
        return sum(1 for t in self._transports if _socket_open(t))

    def abort_all(self) -> None:
        for transport in self._transports:
            if isinstance(transport, asyncio.WriteTransport) and _socket_open(transport):
                transport.abort()
        self._transports.clear()


def _socket_open(transport: asyncio.BaseTransport) -> bool:
    try:
        sock = transport.get_extra_info("socket")
    except AttributeError:  # an SSL transport whose SSL layer is gone: closed with it
        return False
    return sock is not None and sock.fileno() != -1


async def listen(
    factory: Callable[[], asyncio.BaseProtocol],
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None = None,
    max_connections: int = 0,
) -> asyncio.Server:
    """A listening TCP server for ``factory``'s protocol (port 0: any free port)."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        factory,
        host,
        port,
        reuse_address=True,
        ssl=ssl_context,
        backlog=max(MIN_BACKLOG, max_connections),
    )


async def listen_streams(
    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None = None,
    max_connections: int = 0,
    read_limit: int = 2**16,
) -> asyncio.Server:
    """Like ``listen``, for a handler that works on a reader and a writer."""
    return await asyncio.start_server(
        handler,
        host,
        port,
        ssl=ssl_context,
        reuse_address=True,
        limit=read_limit,
        backlog=max(MIN_BACKLOG, max_connections),
    )


def server_address(server: asyncio.Server) -> Address:
    """The address a listener really got (the port chosen when 0 was asked for)."""
    name = server.sockets[0].getsockname()
    return (str(name[0]), int(name[1]))


async def stop_listener(server: asyncio.Server, grace: float = 1.0) -> None:
    """Stop accepting and wait a bounded time for the listener to finish closing.

    Python 3.11's ``Server.wait_closed`` can wait for connections the caller still has to
    end itself; the bound keeps a stuck peer from holding up a shutdown.
    """
    server.close()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(server.wait_closed(), grace)


def set_nodelay(transport: asyncio.BaseTransport | asyncio.StreamWriter) -> None:
    """Turn Nagle off: replies are whole lines or messages written at once, never wait."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def listen_problem(host: str, port: int, exc: OSError, flag: str) -> str:
    """Why a listener could not start, and what to do, for one line of output."""
    if exc.errno == errno.EADDRINUSE:
        return (
            f"cannot listen on {host}:{port}: the port is already in use (another sandbox?);"
            f" stop it or pass {flag} 0 for any free port"
        )
    if exc.errno == errno.EACCES:
        return f"cannot listen on {host}:{port}: permission denied; use a port above 1023"
    return f"cannot listen on {host}:{port}: {exc.strerror or exc}"


def peer_text(peer: Any) -> str:
    """A peer address as the logs show it: ``host:port``."""
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)
