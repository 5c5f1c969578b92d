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

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, LoginPassword, syntax

from sandbox.events import EventBus, SmtpSessionEnded, SmtpSessionProgress
from sandbox.net import AcceptedConnections, ConnectionBudget, peer_text
from sandbox.smtp.commands import (
    MailParams,
    RcptParams,
    Refused,
    parse_bdat,
    parse_mail,
    parse_rcpt,
)
from sandbox.smtp.replies import too_big, with_enhanced_code
from sandbox.store import normalize_address

_BDAT_LINE = re.compile(r"(?i)BDAT +(\d{1,18})(?: +LAST)? *$")
# Replies that mean the client sent something wrong; a session has a budget of them.
_CLIENT_ERRORS = frozenset({"500", "501", "502", "503", "504", "553", "555"})
TRANSCRIPT_LINES = 200
BDAT_READ = 64 * 1024  # a chunk is read in pieces this big; beyond SIZE none is kept
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
        self._chunk_left = 0  # octets of a BDAT chunk still to come (not lines)
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
        while data:
            if self._chunk_left:
                taken = min(self._chunk_left, len(data))
                self._chunk_left -= taken
                data = data[taken:]
                continue
            self._partial += data
            data = b""
            while b"\n" in self._partial:
                raw, self._partial = self._partial.split(b"\n", 1)
                self._line(raw)
                if self._chunk_left:  # the chunk's bytes are not lines
                    data, self._partial = self._partial, b""
                    break
        if len(self._partial) > TRANSCRIPT_LINE_CHARS:
            self._partial = self._partial[:TRANSCRIPT_LINE_CHARS]

    def _line(self, raw: bytes) -> None:
        text = raw.rstrip(b"\r").decode("utf-8", "replace")
        if self._secret_next:
            text, self._secret_next = "****", False
        elif text[:10].upper().startswith("AUTH ") and len(text.split()) > 2:
            text = " ".join(text.split()[:2]) + " ****"
        self._add("C: " + text)
        bdat = _BDAT_LINE.match(text)
        if bdat:
            self._chunk_left = int(bdat.group(1))

    def chunk_done(self, size: int) -> None:
        """Called once the server has read a BDAT chunk: summarise it, as DATA is."""
        self._add(f"C: <chunk data, {size} bytes>")

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


class SandboxEnvelope(Envelope):
    """aiosmtpd's envelope plus what the sandbox's extensions carry (BODY, DSN, BDAT)."""

    def __init__(self) -> None:
        super().__init__()
        self.params = MailParams()
        self.rcpt_params: dict[str, RcptParams] = {}  # by recipient, as the handler took it
        self.chunks = bytearray()  # BDAT data so far (RFC 3030)
        self.chunked = False  # a BDAT was sent: DATA is out of sequence now
        self.chunk_refusal: str | None = None  # the reply the LAST chunk gets instead


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
        strict: bool = True,
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
        self.strict = strict

    # --- replies ------------------------------------------------------------------

    async def push(self, status: Any) -> None:
        text = status.decode("utf-8", "replace") if isinstance(status, bytes) else str(status)
        greeting = not self._greeted
        if greeting:
            self._greeted = True  # RFC 2034 §3: the greeting carries no enhanced code
            override = getattr(self.event_handler, "greeting_fault", None)
            fault = self._refusal or (override(self) if override is not None else None)
            if fault is not None:
                await self._refuse_session(fault)
                return
        elif not self._ehlo_reply:
            text = self._rewrite(text)
        accepted = False
        if self._awaiting_data_reply and not text.startswith("354"):
            self._awaiting_data_reply = False
            if text.startswith("250"):
                self.messages_accepted += 1
                accepted = True
        if text.startswith("354"):
            self._awaiting_data_reply = True
        if text[:3] in _CLIENT_ERRORS and self._greeted:
            self._bad_left -= 1
            if self._bad_left < 0:
                # A budget for bad commands, then a clean goodbye (RFC 5321 §3.8).
                text = "421 4.7.0 Too many errors in this session; closing, reconnect to retry"
        self.transcript.server(text)
        await super().push(text)
        if accepted or greeting:
            self._publish(SmtpSessionProgress, self._tls_protocol is not None)
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

    # --- BDAT (RFC 3030 CHUNKING, BINARYMIME) ----------------------------------------

    @syntax("DATA")
    async def smtp_DATA(self, arg: str | None) -> None:
        envelope = self.envelope
        assert isinstance(envelope, SandboxEnvelope)
        if envelope.chunked:
            await self.push("503 5.5.1 DATA after BDAT in the same transaction (RFC 3030 §2)")
            return
        if envelope.mail_from and envelope.params.body == "BINARYMIME":
            # RFC 3030 §3: BINARYMIME has no end marker that DATA could find.
            await self.push("503 5.5.1 BODY=BINARYMIME messages are sent with BDAT, not DATA")
            return
        await super().smtp_DATA(arg)

    @syntax("BDAT chunk-size [LAST]")
    async def smtp_BDAT(self, arg: str | None) -> None:
        """``BDAT size [LAST]``: exactly ``size`` octets follow the line, read as bytes
        whatever the reply (RFC 3030 §2); the LAST chunk ends the message."""
        parsed = parse_bdat(arg)
        if isinstance(parsed, Refused):
            await self.push(parsed.reply)  # no size: nothing can be skipped
            return
        size, last = parsed
        envelope, session = self.envelope, self.session
        assert isinstance(envelope, SandboxEnvelope) and session is not None
        limit = self.data_size_limit or 0
        keep = envelope.chunk_refusal is None and bool(envelope.rcpt_tos)
        left = size
        while left:
            piece = await self._reader.read(min(left, BDAT_READ))
            if not piece:
                return  # the client hung up mid-chunk
            left -= len(piece)
            if keep:
                envelope.chunks += piece
                if limit and len(envelope.chunks) > limit:
                    envelope.chunk_refusal, keep = too_big(limit), False
                    envelope.chunks = bytearray()
        self.transcript.chunk_done(size)
        if await self.check_helo_needed() or await self.check_auth_needed("BDAT"):
            return
        if not envelope.mail_from:
            await self.push("503 5.5.1 Error: need MAIL command")
            return
        if not envelope.rcpt_tos:
            await self.push("503 5.5.1 Error: need RCPT command")
            return
        envelope.chunked = True
        if not last:
            await self.push(envelope.chunk_refusal or f"250 2.0.0 {size} octets received")
            return
        refusal = envelope.chunk_refusal
        if refusal is None:
            envelope.original_content = envelope.content = bytes(envelope.chunks)
            envelope.chunks = bytearray()
            status = await self._call_handler_hook("DATA")
            refusal = "250 2.0.0 OK" if status is MISSING else str(status)
        if refusal.startswith("250"):
            self.messages_accepted += 1
        self._set_post_data_state()  # type: ignore[no-untyped-call]
        await self.push(refusal)

    async def smtp_EHLO(self, hostname: str) -> None:
        self._ehlo_reply = True
        try:
            await super().smtp_EHLO(hostname)
        finally:
            self._ehlo_reply = False
        # RFC 3461 §5: DSN parameters make MAIL up to 122 and RCPT up to 520 octets longer.
        limits = self.command_size_limits
        limits["MAIL"] = max(limits["MAIL"], SMTP.command_size_limit + 26 + 10 + 122)
        limits["RCPT"] = max(limits["RCPT"], SMTP.command_size_limit + 520)

    async def smtp_HELO(self, hostname: str) -> None:
        self._ehlo_reply = True
        try:
            await super().smtp_HELO(hostname)
        finally:
            self._ehlo_reply = False

    # --- MAIL and RCPT: strict paths and the sandbox's parameters (sandbox.smtp.commands)

    def _create_envelope(self) -> SandboxEnvelope:
        return SandboxEnvelope()

    @syntax("MAIL FROM: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_MAIL(self, arg: str | None) -> None:
        if await self.check_helo_needed() or await self.check_auth_needed("MAIL"):
            return
        envelope, session = self.envelope, self.session
        assert isinstance(envelope, SandboxEnvelope) and session is not None
        rest = self._strip_command_keyword("FROM:", arg) if arg else None
        if rest is None:
            await self.push("501 5.5.4 Syntax: MAIL FROM:<address> [SP <mail-parameters>]")
            return
        if envelope.mail_from:
            await self.push("503 5.5.1 Error: nested MAIL command")
            return
        try:
            address, params = parse_mail(
                rest,
                strict=self.strict,
                esmtp=bool(session.extended_smtp),
                size_limit=self.data_size_limit,
            )
        except Refused as refused:
            await self.push(refused.reply)
            return
        if params.smtputf8 and not self.enable_SMTPUTF8:
            await self.push("501 5.5.4 SMTPUTF8 is not offered by this server")
            return
        envelope.smtp_utf8 = params.smtputf8
        status = await self._call_handler_hook("MAIL", address, list(params.options))
        if status is MISSING:
            envelope.mail_from = address
            envelope.mail_options.extend(params.options)
            status = "250 2.1.0 OK"
        if envelope.mail_from:
            envelope.params = params
        await self.push(status)

    @syntax("RCPT TO: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_RCPT(self, arg: str | None) -> None:
        if await self.check_helo_needed() or await self.check_auth_needed("RCPT"):
            return
        envelope, session = self.envelope, self.session
        assert isinstance(envelope, SandboxEnvelope) and session is not None
        if not envelope.mail_from:
            await self.push("503 5.5.1 Error: need MAIL command")
            return
        rest = self._strip_command_keyword("TO:", arg) if arg else None
        if rest is None:
            await self.push("501 5.5.4 Syntax: RCPT TO:<address> [SP <mail-parameters>]")
            return
        try:
            address, params = parse_rcpt(
                rest,
                strict=self.strict,
                esmtp=bool(session.extended_smtp),
                smtputf8=envelope.smtp_utf8,
            )
        except Refused as refused:
            await self.push(refused.reply)
            return
        status = await self._call_handler_hook("RCPT", address, list(params.options))
        if status is MISSING:
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(params.options)
            status = "250 2.1.5 OK"
        if str(status).startswith("250"):
            envelope.rcpt_params[address] = params
        await self.push(status)

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
            self._publish(SmtpSessionEnded, self._tls_protocol is not None)

    def hang_up(self) -> None:
        """Drop the connection now (shutdown): under STARTTLS, the TCP transport too,
        since a polite TLS close waits for the peer and may outlive the event loop.
        A connection accepted but not yet made is dropped as soon as it is."""
        self._hung_up = True
        for transport in (self._original_transport, self.transport):
            # Closing is not closed: a TLS shutdown in progress still holds the socket.
            if isinstance(transport, asyncio.WriteTransport):
                transport.abort()

    def _publish(self, record: type[SmtpSessionEnded], tls: bool) -> None:
        session = self.session
        peer = session.peer if session is not None else None
        login = getattr(session.auth_data, "login", None) if session is not None else None
        lines = tuple(self.transcript.lines)
        if self.transcript.truncated:
            lines += (f"… {self.transcript.truncated} more lines not kept",)
        self._bus.publish(
            record(
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


def _login_text(login: Any) -> str | None:
    if login is None:
        return None
    if isinstance(login, bytes):
        return login.decode("utf-8", "replace")
    return str(login)
