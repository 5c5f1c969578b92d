"""The thin asyncio adapter: sockets in, parser and session in between, bytes out.

Per connection: read, feed the parser, answer literal continuations, drain commands into
the session until the parser needs data, write. This is the one place where framing
problems become BAD replies, where the bad-command budget and the idle timeout end a
connection, and where an unexpected exception becomes ``* BYE`` — the connection closes,
the server keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from dataclasses import dataclass, field
from typing import Any

from sandbox.events import EventBus, ImapSessionChanged
from sandbox.imap.backend import ImapBackend
from sandbox.imap.parser import (
    NeedData,
    ParseError,
    Parser,
    RawLine,
    SendContinuation,
)
from sandbox.imap.session import ImapSettings, Session, State
from sandbox.net import ConnectionBudget, listen_streams, peer_text, server_address, set_nodelay
from sandbox.session_log import SessionLog
from sandbox.store import SqliteStore

log = logging.getLogger(__name__)
_READ_SIZE = 256 * 1024


class _Timeout(Exception):
    pass


@dataclass
class ImapListener:
    """One listening socket (IMAP with optional STARTTLS, or IMAPS) and its connections."""

    server: asyncio.Server
    backend: ImapBackend
    owns_backend: bool
    connections: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def address(self) -> tuple[str, int]:
        return server_address(self.server)

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return tuple(self.server.sockets)

    def close(self) -> None:
        self.server.close()
        for task in self.connections:
            task.cancel()
        if self.owns_backend:
            self.backend.close()

    async def wait_closed(self) -> None:
        if self.connections:
            await asyncio.wait(self.connections, timeout=2.0)
        await self.server.wait_closed()


async def start_imap_server(
    backend_or_store: ImapBackend | SqliteStore,
    bus: EventBus,
    settings: ImapSettings,
    *,
    host: str,
    port: int,
    ssl_context: ssl.SSLContext | None = None,
    starttls_context: ssl.SSLContext | None = None,
) -> ImapListener:
    """Listen on host:port; ``ssl_context`` makes it IMAPS, ``starttls_context`` offers STARTTLS.

    Pass one ``ImapBackend`` to several listeners (IMAP and IMAPS) so that they share
    caches and \\Recent state; given a store, the listener makes a backend of its own.
    """
    owns = not isinstance(backend_or_store, ImapBackend)
    backend = (
        backend_or_store
        if isinstance(backend_or_store, ImapBackend)
        else ImapBackend(backend_or_store, bus)
    )
    handler = _Handler(backend, bus, settings, ssl_context, starttls_context)
    server = await listen_streams(
        handler.serve,
        host,
        port,
        ssl_context=ssl_context,
        max_connections=settings.max_connections,
        read_limit=_READ_SIZE,
    )
    listener = ImapListener(server, backend, owns)
    handler.listener = listener
    return listener


class _Handler:
    def __init__(
        self,
        backend: ImapBackend,
        bus: EventBus,
        settings: ImapSettings,
        ssl_context: ssl.SSLContext | None,
        starttls_context: ssl.SSLContext | None,
    ) -> None:
        self.backend = backend
        self.bus = bus
        self.settings = settings
        self.ssl_context = ssl_context
        self.starttls_context = starttls_context if ssl_context is None else None
        self.listener: ImapListener | None = None
        # One per listener, as for SMTP: IMAP and IMAPS hold max_connections each.
        self.budget = ConnectionBudget(settings.max_connections)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.budget.take():
            # RFC 3501 §7.1.5 (a BYE greeting), RFC 5530 §3 UNAVAILABLE: then close.
            with contextlib.suppress(Exception):
                writer.write(
                    b"* BYE [UNAVAILABLE] too many connections (at most %d on this listener);"
                    b" try again when one ends\r\n" % self.budget.limit
                )
                await writer.drain()
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)
            return
        try:
            await self._serve(reader, writer)
        finally:
            self.budget.give_back()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if self.listener is not None and task is not None:
            self.listener.connections.add(task)
        set_nodelay(writer)

        async def send(data: bytes) -> None:
            writer.write(data)
            await writer.drain()

        session = Session(
            self.backend,
            self.settings,
            send,
            tls=self.ssl_context is not None,
            starttls_available=self.starttls_context is not None,
        )
        session_log = SessionLog(
            self.bus,
            ImapSessionChanged,
            server="imaps" if self.ssl_context is not None else "imap",
            peer=peer_text(writer.get_extra_info("peername")),
            tls=session.tls,
        )
        parser = Parser(
            max_line=self.settings.max_line_length,
            max_literal=self.settings.max_literal_size,
            max_nesting=self.settings.max_nesting,
            max_command=self.settings.max_command_size_before_login,
        )
        try:
            await session.greet()
            await self._converse(reader, writer, session, parser, session_log)
        except _Timeout:
            with contextlib.suppress(Exception):
                await send(b"* BYE Autologout; idle for too long\r\n")
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, asyncio.CancelledError):
            pass
        except Exception:
            log.exception("IMAP session failed")
            with contextlib.suppress(Exception):
                await send(b"* BYE Internal server error; please reconnect\r\n")
        finally:
            await session.close()
            session_log.close()
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)
            if self.listener is not None and task is not None:
                self.listener.connections.discard(task)

    async def _converse(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        session: Session,
        parser: Parser,
        session_log: SessionLog,
    ) -> None:
        while True:
            while True:
                parser.max_command = (
                    self.settings.max_command_size_before_login
                    if session.state is State.NOT_AUTHENTICATED
                    else self.settings.max_command_size
                )
                item = parser.next_command()
                if isinstance(item, NeedData):
                    # Pipelined commands (mbsync sends hundreds) share one write.
                    await session.flush()
                    break
                if isinstance(item, SendContinuation):
                    await session.emit(f"+ {item.text}\r\n".encode())
                    await session.flush()
                    continue
                if isinstance(item, ParseError):
                    # Protocol errors become their tagged reply here, and only here.
                    await session.parse_error(item.render())
                elif isinstance(item, RawLine):
                    await session.raw_line(item.data)
                else:
                    await session.execute(item)
                if session.wants_raw_line or session.starttls_requested:
                    await session.flush()  # the client waits for "+" or the OK
                if session.too_many_bad_commands:
                    await session.emit(b"* BYE Too many invalid commands\r\n")
                    await session.flush()
                    return
                if session.state is State.LOGOUT:
                    await session.flush()
                    return
                if session.wants_raw_line:
                    parser.expect_raw_line()
                if session.starttls_requested and self.starttls_context is not None:
                    await self._start_tls(reader, writer, parser, self.starttls_context)
                    session.tls_started()
                _log_state(session_log, session)
            data = await self._read(reader, session)
            if not data:
                return
            parser.receive_data(data)

    @staticmethod
    async def _start_tls(
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        parser: Parser,
        context: ssl.SSLContext,
    ) -> None:
        """Upgrade after "OK Begin TLS", acting on nothing the client sent before it.

        RFC 3501 §6.2.1 and RFC 2595 §3.1 (the STARTTLS command-injection bugs): bytes
        sent in plaintext after STARTTLS may be in the parser, in the StreamReader's
        buffer, or not read yet. Reading stops first, so that nothing moves between
        those; the first two are dropped; the third reach the TLS layer, which refuses
        them as a handshake.
        """
        transport = writer.transport
        if not isinstance(transport, asyncio.ReadTransport):
            raise ConnectionError("STARTTLS needs a socket transport")
        transport.pause_reading()  # start_tls resumes it under TLS
        parser.clear()
        _discard_buffered(reader)
        await writer.start_tls(context)

    async def _read(self, reader: asyncio.StreamReader, session: Session) -> bytes:
        """Wait for input; while IDLE, also for changes to tell the client at once."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.idle_timeout
        read = asyncio.ensure_future(reader.read(_READ_SIZE))
        try:
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise _Timeout
                waiters: set[asyncio.Future[Any]] = {read}
                wake: asyncio.Future[Any] | None = None
                if session.idling is not None:
                    wake = asyncio.ensure_future(session.wakeup.wait())
                    waiters.add(wake)
                done, _ = await asyncio.wait(
                    waiters, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                )
                if wake is not None and not wake.done():
                    wake.cancel()
                if read in done:
                    return read.result()
                if wake is not None and wake in done:
                    await session.sync(expunge_ok=True)  # RFC 2177: updates flow while idle
                    await session.flush()
        finally:
            if not read.done():
                read.cancel()


def _log_state(session_log: SessionLog, session: Session) -> None:
    """What the session log shows of this session now (published only when it changed)."""
    selected = session.selected
    session_log.update(
        user=session.user,
        tls=session.tls,
        folder=selected.folder.name if selected is not None else None,
        idling=session.idling is not None,
    )


def _discard_buffered(reader: asyncio.StreamReader) -> None:
    """Drop what a StreamReader holds. asyncio has no public call for it; its buffer is
    the bytearray ``_buffer`` in every CPython since 3.4. Should that change, end the
    connection rather than risk answering injected plaintext under TLS."""
    buffer = getattr(reader, "_buffer", None)
    if not isinstance(buffer, bytearray):
        raise ConnectionError("cannot discard the plaintext read before STARTTLS")
    buffer.clear()
