"""aiosmtpd's SMTP protocol, made to behave like a production MTA and to report itself.

Additions over aiosmtpd: enhanced status codes on every reply (RFC 2034), PIPELINING and
ENHANCEDSTATUSCODES advertised, a clean 421 on idle timeout, oversize replies that say
the limit, per-connection command size limits (aiosmtpd keeps them in a class-wide dict),
and a capped transcript of each session published on the event bus when it ends.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, LoginPassword

from sandbox.events import EventBus, SmtpSessionEnded
from sandbox.net import AcceptedConnections, ConnectionBudget
from sandbox.smtp.replies import too_big, with_enhanced_code
from sandbox.store import normalize_address

# RFC 5321 §4.1.2 Path in its everyday form: dot-atom local part, plain domain.
_SIMPLE_PATH = re.compile(
    r"\s*<(([A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*)"
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*)"
    r">\s*(.*)$",
    re.DOTALL,
)
# Replies that mean the client sent something wrong; a session has a budget of them.
_CLIENT_ERRORS = frozenset({"500", "501", "502", "503", "504", "553", "555"})
TRANSCRIPT_LINES = 200
Verb = Callable[[str | None], Awaitable[None]]
TRANSCRIPT_LINE_CHARS = 300


class Transcript:
    """What a session said, capped; message data and credentials are summarised."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._partial = b""
        self._in_data = False
        self._data_bytes = 0
        self._secret_next = False
        self.truncated = 0

    def _add(self, line: str) -> None:
        if len(self.lines) < TRANSCRIPT_LINES:
            self.lines.append(line[:TRANSCRIPT_LINE_CHARS])
        else:
            self.truncated += 1

    def client(self, data: bytes) -> None:
        if self._in_data:
            self._data_bytes += len(data)
            return
        self._partial += data
        *complete, self._partial = self._partial.split(b"\n")
        if len(self._partial) > TRANSCRIPT_LINE_CHARS:
            self._partial = self._partial[:TRANSCRIPT_LINE_CHARS]
        for raw in complete:
            text = raw.rstrip(b"\r").decode("utf-8", "replace")
            if self._secret_next:
                text, self._secret_next = "****", False
            elif text[:10].upper().startswith("AUTH ") and len(text.split()) > 2:
                text = " ".join(text.split()[:2]) + " ****"
            self._add("C: " + text)

    def server(self, reply: str) -> None:
        if self._in_data:
            self._add(f"C: <message data, {self._data_bytes} bytes>")
            self._in_data = False
        self._add("S: " + reply)
        if reply.startswith("354"):
            self._in_data, self._data_bytes = True, 0
        self._secret_next = reply.startswith("334")


class _Verbs(dict[str, Verb]):
    """The verbs a session knows; any other gets ``unknown`` instead of ``None``.

    aiosmtpd hangs up (502) after five unknown verbs, its own fixed limit. Answering
    them here leaves one budget for every client error: ``max_bad_commands``.
    """

    def __init__(
        self, known: dict[str, Verb], unknown: Callable[[str, str | None], Awaitable[None]]
    ) -> None:
        super().__init__(known)
        self._unknown = unknown

    def get(self, command: str, default: Any = None) -> Any:
        known = super().get(command)
        if known is not None:
            return known

        async def unknown(arg: str | None) -> None:
            await self._unknown(command, arg)

        return unknown


class SandboxSMTP(SMTP):
    def __init__(
        self,
        handler: Any,
        *,
        bus: EventBus,
        server_name: str,
        line_length_limit: int = 1001,
        budget: ConnectionBudget | None = None,
        accepted: AcceptedConnections | None = None,
        max_bad_commands: int = 20,
        **kwargs: Any,
    ) -> None:
        # Read by SMTP.__init__ to size the stream reader, so it must be set first.
        self.line_length_limit = line_length_limit
        super().__init__(handler, **kwargs)
        self.command_size_limits = collections.defaultdict(lambda: SMTP.command_size_limit)
        self._smtp_methods = _Verbs(self._smtp_methods, self._unknown_verb)
        self._bus = bus
        self._server_name = server_name
        self._started = time.time()
        self._greeted = False
        self._ehlo_reply = False
        self._awaiting_data_reply = False
        self.messages_accepted = 0
        self.transcript = Transcript()
        self._ended = False
        self._budget = budget
        self._accepted = accepted
        self._hung_up = False  # shutdown came before connection_made
        self._counted = False
        self._bad_left = max_bad_commands
        self._refusal: str | None = None

    # --- replies ------------------------------------------------------------------

    async def push(self, status: Any) -> None:
        text = status.decode("utf-8", "replace") if isinstance(status, bytes) else str(status)
        if not self._greeted:
            self._greeted = True  # RFC 2034 §3: the greeting carries no enhanced code
            override = getattr(self.event_handler, "greeting_fault", None)
            fault = self._refusal or (override(self) if override is not None else None)
            if fault is not None:
                await self._refuse_session(fault)
                return
        elif not self._ehlo_reply:
            text = self._rewrite(text)
        if self._awaiting_data_reply and not text.startswith("354"):
            self._awaiting_data_reply = False
            if text.startswith("250"):
                self.messages_accepted += 1
        if text.startswith("354"):
            self._awaiting_data_reply = True
        if text[:3] in _CLIENT_ERRORS and self._greeted:
            self._bad_left -= 1
            if self._bad_left < 0:
                # A budget for bad commands, then a clean goodbye (RFC 5321 §3.8).
                text = "421 4.7.0 Too many errors in this session; closing, reconnect to retry"
        self.transcript.server(text)
        await super().push(text)
        if text.startswith("421") and self.transport is not None:
            self.transport.close()  # RFC 5321 §3.8: 421 means the server closes the channel

    async def _refuse_session(self, reply: str) -> None:
        """Answer the connection with a refusal instead of a greeting, then hang up."""
        if reply:
            self.transcript.server(reply)
            await super().push(reply)
        if self.transport is not None:
            self.transport.close()

    async def auth_PLAIN(self, _: Any, args: list[str]) -> AuthResult:
        """RFC 4616 §2: ``authzid NUL authcid NUL passwd``; aiosmtpd drops the authzid.

        Logged in as one account, a client may not act as another: an authzid is
        accepted only when it names the login itself.
        """
        if len(args) == 1:
            blob = await self.challenge_auth("")
            if blob is MISSING:
                return AuthResult(success=False)
        else:
            try:
                blob = base64.b64decode(args[1].encode(), validate=True)
            except (ValueError, binascii.Error):
                await self.push("501 5.5.2 Cannot decode the base64 of AUTH PLAIN")
                return AuthResult(success=False, handled=True)
        parts = bytes(blob).split(b"\x00") if isinstance(blob, bytes) else []
        if len(parts) != 3:
            await self.push("501 5.5.2 AUTH PLAIN takes authzid NUL login NUL password")
            return AuthResult(success=False, handled=True)
        authzid, login, password = parts
        if authzid and _account(authzid) != _account(login):
            await self.push(
                f"535 5.7.8 Logged in as {_account(login)} you cannot act as"
                f" {_account(authzid)}: leave the authorization identity empty"
            )
            return AuthResult(success=False, handled=True)
        return self._authenticate("PLAIN", LoginPassword(login, password))

    async def _unknown_verb(self, command: str, arg: str | None) -> None:
        # RFC 5321 §4.2.4: 500 for a command not recognised; it counts as a bad command.
        shown = command if len(command) <= 20 else command[:20] + "…"
        await self.push(
            f'500 5.5.2 Command "{shown}" not recognized; send HELP for the supported commands'
        )

    def _rewrite(self, text: str) -> str:
        if text.startswith("552") and ("Too much mail data" in text or "exceeds fixed" in text):
            return too_big(self.data_size_limit or 0)
        return with_enhanced_code(text)

    async def smtp_EHLO(self, hostname: str) -> None:
        self._ehlo_reply = True
        try:
            await super().smtp_EHLO(hostname)
        finally:
            self._ehlo_reply = False

    async def smtp_HELO(self, hostname: str) -> None:
        self._ehlo_reply = True
        try:
            await super().smtp_HELO(hostname)
        finally:
            self._ehlo_reply = False

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """``<local@domain> PARAMS`` the quick way; anything unusual goes to aiosmtpd.

        aiosmtpd parses every address with the email package's RFC 5322 parser and
        defines a class on each call; that was an eighth of the relay's CPU time.
        """
        match = _SIMPLE_PATH.match(arg)
        if match is None or (self.local_part_limit and len(match.group(2)) > self.local_part_limit):
            return super()._getaddr(arg)
        return match.group(1), match.group(3)

    # --- the connection -----------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self.transcript.client(data)
        super().data_received(data)

    def _timeout_cb(self) -> None:
        """RFC 5321 §4.5.3.2: say why before closing an idle connection."""
        transport = self.transport
        if isinstance(transport, asyncio.WriteTransport) and not transport.is_closing():
            reply = "421 4.4.2 Idle too long; closing the connection, reconnect to continue"
            self.transcript.server(reply)
            transport.write(reply.encode() + b"\r\n")
        super()._timeout_cb()  # type: ignore[no-untyped-call]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self.transport is None and self._original_transport is None
        if first and self._accepted is not None:
            self._accepted.add(transport)
        if first and self._budget is not None:  # not the STARTTLS re-entry
            self._counted = self._budget.take()
            if not self._counted:
                self._refusal = (
                    f"421 4.7.0 Too many connections (this server takes {self._budget.limit}"
                    " at once); try again later"
                )
        super().connection_made(transport)
        if first and self._hung_up and isinstance(transport, asyncio.WriteTransport):
            transport.abort()  # accepted while the server was shutting down

    def connection_lost(self, error: Exception | None) -> None:
        if self._counted and self._budget is not None:
            self._budget.give_back()
            self._counted = False
        super().connection_lost(error)
        if not self._ended:  # aiosmtpd may call this twice when a TLS handshake fails
            self._ended = True
            self._publish_end(self._tls_protocol is not None)

    def hang_up(self) -> None:
        """Drop the connection now (shutdown): under STARTTLS, the TCP transport too,
        since a polite TLS close waits for the peer and may outlive the event loop.
        A connection accepted but not yet made is dropped as soon as it is."""
        self._hung_up = True
        for transport in (self._original_transport, self.transport):
            # Closing is not closed: a TLS shutdown in progress still holds the socket.
            if isinstance(transport, asyncio.WriteTransport):
                transport.abort()

    def _publish_end(self, tls: bool) -> None:
        session = self.session
        peer = session.peer if session is not None else None
        login = getattr(session.auth_data, "login", None) if session is not None else None
        lines = tuple(self.transcript.lines)
        if self.transcript.truncated:
            lines += (f"… {self.transcript.truncated} more lines not kept",)
        self._bus.publish(
            SmtpSessionEnded(
                server=self._server_name,
                peer=peer_text(peer),
                helo=session.host_name if session is not None else None,
                auth_user=_login_text(login),
                tls=tls,
                messages=self.messages_accepted,
                started_at=self._started,
                transcript=lines,
            )
        )


def _account(name: bytes) -> str:
    return normalize_address(name.decode("utf-8", "replace"))


def peer_text(peer: Any) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)


def _login_text(login: Any) -> str | None:
    if login is None:
        return None
    if isinstance(login, bytes):
        return login.decode("utf-8", "replace")
    return str(login)
