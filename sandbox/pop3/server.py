"""The thin asyncio adapter: socket bytes → codec → session → socket bytes.

One task per connection drains every complete command in order (so pipelined commands
are answered in order, RFC 2449 §6.6), waits for more data only when the codec needs it,
and pauses reading while too much input is buffered and writing while the peer is slow.
Failures the session did not foresee end here, in one place: ``-ERR [SYS/TEMP]`` and a
close, while the server goes on serving everyone else.

While that task waits for input, ``data_received`` answers on the spot the commands the
session can answer from memory (``Pop3Session.handle_now``: LIST, UIDL, RETR of a message
read ahead, ...), which saves a pass through the event loop per command; the first
command that needs the task is handed to it, with everything after it, so the order
holds.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass, field

from sandbox.events import EventBus, Pop3SessionChanged
from sandbox.net import (
    ConnectionBudget,
    listen,
    peer_text,
    server_address,
    set_nodelay,
    stop_listener,
)
from sandbox.pop3.backend import Pop3Backend
from sandbox.pop3.codec import Command, LineTooLong, NeedData, Pop3Codec, err
from sandbox.pop3.session import Pop3Session, Pop3Settings
from sandbox.session_log import SessionLog

log = logging.getLogger(__name__)

# Stop reading from a client that pipelines faster than we answer, beyond this much input.
READ_HIGH_WATER = 256 * 1024


@dataclass
class Pop3Server:
    """A listening POP3 (or POP3S) server; ``close`` also ends open sessions."""

    server: asyncio.Server
    connections: set[Pop3Connection] = field(default_factory=set)
    # Each listener has its own: POP3 and POP3S hold max_connections each, like SMTP.
    budget: ConnectionBudget = field(default_factory=lambda: ConnectionBudget(1000))

    @property
    def address(self) -> tuple[str, int]:
        return server_address(self.server)

    async def close(self) -> None:
        """Stop listening, end every session without UPDATE, wait for their locks."""
        self.server.close()
        tasks = [c.abort() for c in list(self.connections)]
        pending = [t for t in tasks if t is not None]
        if pending:
            await asyncio.wait(pending, timeout=5)
        await stop_listener(self.server)


async def start_pop3_server(
    backend: Pop3Backend,
    *,
    host: str,
    port: int,
    hostname: str,
    ssl_context: ssl.SSLContext | None = None,
    starttls_context: ssl.SSLContext | None = None,
    settings: Pop3Settings | None = None,
    bus: EventBus | None = None,
) -> Pop3Server:
    """Listen for POP3; with ``ssl_context`` it is POP3S (implicit TLS, RFC 8314 §3.3),
    with ``starttls_context`` plain POP3 offers STLS (RFC 2595 §4)."""
    settings = settings or Pop3Settings()
    holder: list[Pop3Server] = []

    def factory() -> Pop3Connection:
        return Pop3Connection(
            backend,
            holder[0],
            hostname=hostname,
            settings=settings,
            starttls_context=None if ssl_context is not None else starttls_context,
            bus=bus,
        )

    server = await listen(
        factory, host, port, ssl_context=ssl_context, max_connections=settings.max_connections
    )
    pop3 = Pop3Server(server, budget=ConnectionBudget(settings.max_connections))
    holder.append(pop3)
    return pop3


class Pop3Connection(asyncio.Protocol):
    def __init__(
        self,
        backend: Pop3Backend,
        server: Pop3Server,
        *,
        hostname: str,
        settings: Pop3Settings,
        starttls_context: ssl.SSLContext | None,
        bus: EventBus | None = None,
    ) -> None:
        self._backend = backend
        self._bus = bus
        self._log: SessionLog | None = None  # the session log's entry, given a bus
        self._server = server
        self._hostname = hostname
        self._settings = settings
        self._starttls_context = starttls_context
        self._codec = Pop3Codec(settings.max_line)
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        # The task waits on this future for input; data_received resolves it.
        self._waiter: asyncio.Future[None] | None = None
        # A command data_received took from the codec but left to the task; it goes first.
        self._next: Command | LineTooLong | None = None
        self._last_input = self._loop.time()
        self._idle_timer: asyncio.TimerHandle | None = None
        self._idle_expired = False
        self._can_write = asyncio.Event()
        self._can_write.set()
        self._reading_paused = False
        self._ended = False  # EOF or connection lost: no more input will come
        self._task: asyncio.Task[None] | None = None
        self._refused = False  # over the listener's connection budget: answered and closed
        self.session: Pop3Session | None = None

    # --- asyncio.Protocol callbacks -----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        if not self._server.budget.take():
            # RFC 2449 §8.1.2: a temporary refusal instead of the greeting, then a close.
            self._refused = True
            limit = self._server.budget.limit
            transport.write(
                err(
                    f"too many connections (at most {limit} on this listener);"
                    " try again when one ends",
                    "SYS/TEMP",
                )
            )
            transport.close()
            return
        set_nodelay(transport)
        tls = transport.get_extra_info("sslcontext") is not None
        self.session = Pop3Session(
            self._backend,
            hostname=self._hostname,
            settings=self._settings,
            tls_active=tls,
            tls_available=tls or self._starttls_context is not None,
        )
        if self._bus is not None:
            self._log = SessionLog(
                self._bus,
                Pop3SessionChanged,
                server="pop3s" if self._starttls_context is None and tls else "pop3",
                peer=peer_text(transport.get_extra_info("peername")),
                tls=tls,
            )
        self._server.connections.add(self)
        self._idle_timer = self._loop.call_later(self._settings.idle_timeout, self._check_idle)
        self._task = self._loop.create_task(self._run())

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        self._codec.receive_data(data)
        self._last_input = self._loop.time()
        waiter = self._waiter
        if waiter is not None and not waiter.done() and not self._answer_now():
            return  # every command answered; the task goes on waiting
        if self._codec.buffered > READ_HIGH_WATER and self._transport is not None:
            self._transport.pause_reading()
            self._reading_paused = True
        self._wake()

    def _answer_now(self) -> bool:
        """Answer here what needs no I/O, in order; True when the task has work left."""
        session, transport = self.session, self._transport
        assert session is not None and transport is not None
        while self._can_write.is_set() and not transport.is_closing():
            item = self._codec.next_command()
            if isinstance(item, NeedData):
                return False
            try:
                reply = session.handle_now(item)
            except Exception:  # the task meets it again and ends the session, as always
                reply = None
            if reply is None:
                self._next = item
                return True
            transport.write(reply.data)
        return True  # the peer reads slowly: the task writes the rest as it drains

    def eof_received(self) -> bool | None:
        self._ended = True
        self._wake()
        # A half-closed plain connection stays open so that commands sent before the
        # EOF (printf 'LIST\r\nQUIT\r\n' | nc) are still answered; TLS cannot do that.
        tls = self._transport is not None and self._transport.get_extra_info("sslcontext")
        return not tls

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended = True
        self._wake()
        self._can_write.set()

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    # --- the session loop -----------------------------------------------------------

    def abort(self) -> asyncio.Task[None] | None:
        """Server shutdown: drop the connection; the loop ends the session without UPDATE."""
        if self._transport is not None:
            self._transport.abort()
        self._ended = True
        self._wake()
        return self._task

    async def _run(self) -> None:
        session = self.session
        assert session is not None and self._transport is not None
        try:
            self._write(session.greeting())
            while True:
                pending, self._next = self._next, None
                item = pending or self._codec.next_command()
                if isinstance(item, NeedData):
                    if not await self._wait_for_data():
                        break
                    continue
                reply = await session.handle(item)
                self._write(reply.data)
                self._log_state()
                await self._can_write.wait()
                if reply.close or self._transport.is_closing():
                    break
                if reply.start_tls and not await self._start_tls():
                    break
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("POP3 session failed")
            self._write(
                err("the sandbox failed while handling this command; reconnect", "SYS/TEMP")
            )
        finally:
            try:
                await session.close()
            finally:
                if self._log is not None:
                    self._log.close()
                if self._idle_timer is not None:
                    self._idle_timer.cancel()
                self._server.connections.discard(self)
                self._server.budget.give_back()
                if self._transport is not None and not self._transport.is_closing():
                    self._transport.close()

    async def _wait_for_data(self) -> bool:
        """Wait for input; False when the peer is gone or idle for too long."""
        if self._ended:
            return False
        if self._reading_paused and self._transport is not None:
            self._reading_paused = False
            self._transport.resume_reading()
        self._waiter = self._loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None
        return not self._idle_expired

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _check_idle(self) -> None:
        """One timer per connection, pushed back lazily: cheaper than a timeout per read."""
        idle = self._settings.idle_timeout
        now = self._loop.time()
        deadline = self._last_input + idle
        if self._waiter is None or now < deadline:  # busy answering, or input came since
            self._idle_timer = self._loop.call_at(max(deadline, now + 1.0), self._check_idle)
            return
        # RFC 1939 §3: the autologout timer closes without UPDATE and without a
        # response, so nothing is deleted and no client sees a stray line.
        self._idle_expired = True
        self._wake()

    async def _start_tls(self) -> bool:
        """Upgrade after "+OK"; False when the handshake fails (the connection ends)."""
        assert self._starttls_context is not None and self._transport is not None
        # RFC 2595 §4 (and RFC 3207 §4.2): nothing the client sent before the handshake
        # is acted on after it, so a command injected in plaintext is dropped here. There
        # is no StreamReader: every byte read is in the codec (or, taken out of it ahead
        # of the task, in _next), and start_tls stops reading before anything can await.
        self._codec.discard_buffer()
        self._next = None
        loop = asyncio.get_running_loop()
        try:
            new = await loop.start_tls(
                self._transport, self, self._starttls_context, server_side=True
            )
        except (OSError, ssl.SSLError, ConnectionError, TimeoutError) as exc:
            log.info("POP3 STLS handshake failed: %s", exc)
            return False
        if new is None:
            return False
        self._transport = new
        assert self.session is not None
        self.session.tls_started()
        self._log_state()
        return True

    def _log_state(self) -> None:
        if self._log is not None and self.session is not None:
            self._log.update(user=self.session.user, tls=self.session.tls_active)

    def _write(self, data: bytes) -> None:
        transport = self._transport
        if data and transport is not None and not transport.is_closing():
            transport.write(data)
