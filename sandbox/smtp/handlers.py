"""What the sandbox's SMTP servers do with a transaction.

The submission server is the sender's outbound server: it accepts any recipient. The MX
server of a fake domain is that domain's inbound server: it accepts its own domain only,
like a real MX that is not an open relay.
"""

from __future__ import annotations

import logging
import secrets
from abc import ABC, abstractmethod
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from sandbox.config import Config
from sandbox.events import EventBus
from sandbox.ingest import ingest
from sandbox.smtp.protocol import peer_text
from sandbox.smtp.received import protocol_name, received_header
from sandbox.store import (
    INBOX,
    SEEN,
    SENT,
    Copy,
    Hop,
    NewMessage,
    SqliteStore,
    domain_of,
    normalize_address,
)

log = logging.getLogger(__name__)


class Authenticator:
    """Any credentials pass, unless accounts are configured (then: 535 5.7.8)."""

    def __init__(self, config: Config) -> None:
        self._accounts = {a.address: a.password for a in config.accounts}

    def __call__(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not self._accounts:
            return AuthResult(success=True, auth_data=auth_data)
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode("utf-8", "replace").lower()
        password = auth_data.password.decode("utf-8", "replace")
        expected = self._accounts.get(login)
        ok = expected is not None and secrets.compare_digest(expected, password)
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


class BaseHandler(ABC):
    """Shared EHLO, RCPT limits, DATA bookkeeping and error replies."""

    server_name = "smtp"

    def __init__(self, config: Config, store: SqliteStore, bus: EventBus, hostname: str) -> None:
        self.config = config
        self.store = store
        self.bus = bus
        self.hostname = hostname

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        # RFC 2920 and RFC 2034: aiosmtpd handles both but does not say so.
        return [*responses[:-1], "250-PIPELINING", "250-ENHANCEDSTATUSCODES", responses[-1]]

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if "@" not in address or address.startswith("@") or address.endswith("@"):
            return f"553 5.1.3 Recipient must be an address like name@domain, got <{address}>"
        if len(envelope.rcpt_tos) >= self.config.smtp.max_recipients:
            return (
                f"452 4.5.3 Too many recipients: at most {self.config.smtp.max_recipients}"
                " per message; send the rest in another transaction"
            )
        refusal = self.refuse_recipient(address)
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 2.1.5 OK"

    def refuse_recipient(self, address: str) -> str | None:
        return None

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        queue_id = secrets.token_hex(6)
        recipients = _unique(envelope.rcpt_tos)
        sender = "" if envelope.mail_from == "<>" else normalize_address(envelope.mail_from or "")
        tls = (
            server.transport is not None
            and server.transport.get_extra_info("sslcontext") is not None
        )
        auth_user = _text(getattr(session.auth_data, "login", None))
        peer_ip = _peer_ip(session.peer)
        header = received_header(
            helo=session.host_name,
            peer_ip=peer_ip,
            peer_name="localhost" if peer_ip in ("127.0.0.1", "::1") else None,
            by=self.hostname,
            protocol=protocol_name(
                esmtp=bool(session.extended_smtp),
                tls=tls,
                auth=bool(session.authenticated),
                utf8=bool(envelope.smtp_utf8),
            ),
            queue_id=queue_id,
            recipients=recipients,
        )
        raw = header + _as_bytes(envelope.original_content)
        arrival = Hop(
            self.arrival_step,
            "accepted",
            {
                "server": self.hostname,
                "client": peer_text(session.peer),
                "helo": session.host_name,
                "auth_user": auth_user,
                "tls": tls,
                "mail_from": sender or "<>",
                "rcpt_to": recipients,
                "queue_id": queue_id,
            },
        )
        copies, hops = self.plan(sender, recipients)
        await ingest(
            self.store,
            self.bus,
            NewMessage(
                raw=raw,
                envelope_from=sender,
                envelope_to=tuple(recipients),
                source=self.server_name,
                copies=copies,
                hops=(arrival, *hops),
            ),
        )
        return f"250 2.0.0 OK: queued as {queue_id}"

    arrival_step = "received"

    @abstractmethod
    def plan(self, sender: str, recipients: list[str]) -> tuple[tuple[Copy, ...], tuple[Hop, ...]]:
        """Which copies to store, and the hops that say so."""

    async def handle_exception(self, error: Exception) -> str:
        log.exception("%s: failed to handle a command", self.server_name)
        return (
            "451 4.3.0 The sandbox could not process this command"
            f" ({type(error).__name__}); nothing was stored, try again"
        )


class SubmissionHandler(BaseHandler):
    """The outbound server apps talk to: every recipient accepted, at any domain.

    Until the relay exists, each recipient's copy is put straight into its INBOX;
    recipients at domains that are not fake are held, never sent anywhere.
    """

    server_name = "submission"
    arrival_step = "submitted"

    def plan(self, sender: str, recipients: list[str]) -> tuple[tuple[Copy, ...], tuple[Hop, ...]]:
        copies: list[Copy] = []
        hops: list[Hop] = []
        for rcpt in recipients:
            domain = domain_of(rcpt)
            if self.config.is_fake_domain(domain):
                copies.append(Copy(rcpt, INBOX))
                hops.append(Hop("stored", "delivered", {"mailbox": rcpt, "folder": INBOX}))
            else:
                copies.append(Copy(rcpt, INBOX, held=True))
                reason = f"{domain} is not a sandbox domain: kept here, never sent anywhere"
                hops.append(
                    Hop("stored", "held", {"mailbox": rcpt, "folder": INBOX, "reason": reason})
                )
        if sender and self.config.is_fake_domain(domain_of(sender)):
            copies.append(Copy(sender, SENT, flags=(SEEN,)))
            hops.append(Hop("stored", "sent copy", {"mailbox": sender, "folder": SENT}))
        return tuple(copies), tuple(hops)


class MxHandler(BaseHandler):
    """The inbound server of one fake domain; refuses to relay for any other."""

    server_name = "mx"

    def __init__(
        self, config: Config, store: SqliteStore, bus: EventBus, hostname: str, domain: str
    ) -> None:
        super().__init__(config, store, bus, hostname)
        self.domain = domain
        self.server_name = f"mx:{domain}"

    def refuse_recipient(self, address: str) -> str | None:
        if domain_of(address) != self.domain:
            return (
                f"550 5.7.1 Relaying denied: this is the MX server of {self.domain}"
                f" and takes mail for @{self.domain} only"
            )
        return None

    def plan(self, sender: str, recipients: list[str]) -> tuple[tuple[Copy, ...], tuple[Hop, ...]]:
        copies = tuple(Copy(rcpt, INBOX) for rcpt in recipients)
        hops = tuple(
            Hop("stored", "delivered", {"mailbox": rcpt, "folder": INBOX}) for rcpt in recipients
        )
        return copies, hops


def _unique(addresses: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for address in addresses:
        seen.setdefault(normalize_address(address), None)
    return list(seen)


def _as_bytes(content: Any) -> bytes:
    if isinstance(content, bytes):
        return content
    if isinstance(content, str):
        return content.encode("utf-8", "surrogateescape")
    return b""


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _peer_ip(peer: Any) -> str:
    return str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
