"""What the sandbox's SMTP servers do with a transaction.

The submission server is the sender's outbound server: it accepts any recipient. The MX
server of a fake domain is that domain's inbound server: it accepts its own domain only,
like a real MX that is not an open relay.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from sandbox.auth.service import Authenticity, Screened
from sandbox.chaos import ChaosBoard
from sandbox.config import Config
from sandbox.events import EventBus
from sandbox.headers import complete_submission, return_path
from sandbox.ingest import ingest
from sandbox.net import peer_text
from sandbox.smtp.protocol import SandboxEnvelope
from sandbox.store import (
    INBOX,
    SEEN,
    SENT,
    Copy,
    Hop,
    NewDelivery,
    NewMessage,
    Outcome,
    SqliteStore,
    Step,
    domain_of,
    normalize_address,
)
from sandbox.store.dsn import DeliveryDsn, RecipientDsn
from sandbox.trace import protocol_name, received_header

log = logging.getLogger(__name__)


class Accounts:
    """The configured logins, by address normalised as POP3 and IMAP normalise user names."""

    def __init__(self, config: Config) -> None:
        self._passwords = {normalize_address(a.address): a.password for a in config.accounts}

    def __bool__(self) -> bool:
        return bool(self._passwords)

    def check(self, login: str, password: str) -> bool:
        expected = self._passwords.get(normalize_address(login))
        return expected is not None and secrets.compare_digest(
            expected.encode("utf-8", "surrogateescape"),
            password.encode("utf-8", "surrogateescape"),
        )

    def sender_refusal(self, sender: str, login: str | None) -> str | None:
        """Why this session may not use ``sender`` as MAIL FROM, or None if it may.

        A configured account's address belongs to whoever logged in as it: anyone else
        (another account, or a client that did not log in) is refused, the way a
        provider's submission server ties the envelope sender to the login.
        """
        address = normalize_address(sender)
        if address not in self._passwords or (login is not None and address == login):
            return None
        who = f"you are logged in as {login}" if login else "this session has not logged in"
        return (
            f"553 5.7.1 <{address}> is a configured account and {who}: authenticate as"
            f" {address} (AUTH) to send as that address"
        )


class Authenticator:
    """Any credentials pass, unless accounts are configured (then: 535 5.7.8).

    The identity kept for the session is the normalised login, without the password.
    """

    def __init__(self, config: Config) -> None:
        self._accounts = Accounts(config)

    def __call__(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = normalize_address(auth_data.login.decode("utf-8", "surrogateescape"))
        if self._accounts:
            password = auth_data.password.decode("utf-8", "surrogateescape")
            if not self._accounts.check(login, password):
                return AuthResult(success=False, handled=False)
        return AuthResult(
            success=True,
            handled=False,
            auth_data=LoginPassword(login.encode("utf-8", "surrogateescape"), b""),
        )


def session_login(session: Session) -> str | None:
    """Who the session authenticated as (normalised), None before AUTH."""
    if not session.authenticated:
        return None
    return _text(getattr(session.auth_data, "login", None))


@dataclass(frozen=True)
class Plan:
    """What a server does with an accepted message: copies to store, deliveries to queue."""

    copies: tuple[Copy, ...] = ()
    hops: tuple[Hop, ...] = ()
    deliveries: tuple[NewDelivery, ...] = ()


ReverseLookup = Callable[[str], Awaitable[str | None]]


async def no_reverse_lookup(address: str) -> str | None:
    return None


class BaseHandler(ABC):
    """Shared EHLO, RCPT limits, DATA bookkeeping and error replies."""

    server_name = "smtp"
    arrival_step = Step.RECEIVED
    # RFC 6409 §8.2, §8.3: a submission server adds a missing Date: and Message-ID:.
    completes_headers = False
    auth: Authenticity | None = None  # SPF, DKIM, DMARC (set by the runtime)

    def __init__(
        self,
        config: Config,
        store: SqliteStore,
        bus: EventBus,
        hostname: str,
        reverse_lookup: ReverseLookup = no_reverse_lookup,
    ) -> None:
        self.config = config
        self.store = store
        self.bus = bus
        self.hostname = hostname
        self.reverse_lookup = reverse_lookup

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        # RFC 2920 and RFC 2034: aiosmtpd handles both but does not say so; RFC 3030
        # CHUNKING and BINARYMIME are the sandbox's own (SandboxSMTP.smtp_BDAT), and so is
        # DSN (RFC 3461: parameters parsed in sandbox.smtp.commands, reports by the relay).
        extensions = ["PIPELINING", "ENHANCEDSTATUSCODES", "CHUNKING", "BINARYMIME", "DSN"]
        return [*responses[:-1], *(f"250-{name}" for name in extensions), responses[-1]]

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address.lower() == "postmaster":  # RFC 5321 §4.5.1: MUST be accepted
            address = f"postmaster@{self.postmaster_domain()}"
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

    def postmaster_domain(self) -> str:
        """Where a bare ``RCPT TO:<Postmaster>`` goes: this server's own domain."""
        return self.hostname

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
        auth_user = session_login(session)
        peer_ip = _peer_ip(session.peer)
        content = _as_bytes(envelope.original_content)
        if self.completes_headers:
            content = complete_submission(content, hostname=self.hostname)
        header = received_header(
            helo=session.host_name,
            peer_ip=peer_ip,
            peer_name=await self._reverse_name(session, peer_ip),
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
        arrival = Hop(
            self.arrival_step,
            Outcome.ACCEPTED,
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
        screened = await self.screen(content, session, sender, peer_ip)
        if screened.refusal:
            return screened.refusal
        plan = self.plan(sender, recipients)
        if screened.folder:
            plan = _refiled(plan, screened.folder)
        raw = header + screened.prefix + screened.content
        # RFC 5321 §4.4: final delivery (a local mailbox: every MX copy, a held copy)
        # adds Return-Path; a copy that is relayed on or filed in Sent has none. When a
        # message has both, the final copies are stored as a message of their own.
        final = tuple(c for c in plan.copies if self.final_delivery(c))
        onward = tuple(c for c in plan.copies if not self.final_delivery(c))
        parts: list[tuple[bytes, tuple[Copy, ...], tuple[NewDelivery, ...]]] = []
        if final:
            parts.append((return_path(sender) + raw, final, ()))
        if onward or plan.deliveries or not final:
            parts.append((raw, onward, _with_dsn(plan.deliveries, envelope)))
        parent = self.trace_parent(content)
        for data, copies, deliveries in parts:  # the relayed part last: it owns the queue id
            await ingest(
                self.store,
                NewMessage(
                    raw=data,
                    envelope_from=sender,
                    envelope_to=tuple(recipients),
                    source=self.server_name,
                    copies=copies,
                    hops=(arrival, *screened.hops, *plan.hops),
                    queue_id=queue_id,
                    parent_queue_id=parent,
                    deliveries=deliveries,
                    # Exactly once: the relay's delivery is marked in the commit that
                    # stores the final copies.
                    delivered_for=self.relay_domain if parent and copies is final else None,
                ),
            )
        return f"250 2.0.0 OK: queued as {queue_id}"

    def final_delivery(self, copy: Copy) -> bool:
        """Whether storing this copy is the message's final delivery (RFC 5321 §4.4)."""
        return True

    async def _reverse_name(self, session: Session, address: str) -> str | None:
        """The client's PTR name from the stub, looked up once per connection."""
        cached = getattr(session, "sandbox_reverse_name", None)
        if cached is None:
            cached = (await self.reverse_lookup(address)) or ""
            session.sandbox_reverse_name = cached  # type: ignore[attr-defined]
        return cached or None

    # The domain whose relay deliveries this server fulfils (an MX server's own).
    relay_domain: str | None = None

    def trace_parent(self, content: bytes) -> str | None:
        """The queue id this message continues, if it was relayed to us by the sandbox."""
        return None

    async def screen(self, content: bytes, session: Session, sender: str, peer: str) -> Screened:
        """Authentication before storing (sandbox.auth): sign, check, or nothing."""
        return Screened(content)

    @abstractmethod
    def plan(self, sender: str, recipients: list[str]) -> Plan:
        """Which copies to store and deliveries to queue, and the hops that say so."""

    async def handle_exception(self, error: Exception) -> str:
        log.exception("%s: failed to handle a command", self.server_name)
        return (
            "451 4.3.0 The sandbox could not process this command"
            f" ({type(error).__name__}); nothing was stored, try again"
        )


class SubmissionHandler(BaseHandler):
    """The outbound server apps talk to: every recipient accepted, at any domain.

    Recipients at fake domains are queued for the relay, one delivery per domain, which
    finds each domain's MX through the DNS stub. Recipients anywhere else are held: kept
    in their local mailbox, never sent. A sender at a fake domain gets a Sent copy.
    """

    server_name = "submission"
    arrival_step = Step.SUBMITTED
    completes_headers = True

    def final_delivery(self, copy: Copy) -> bool:
        return copy.held  # kept here for good; Sent is the sender's own copy

    async def screen(self, content: bytes, session: Session, sender: str, peer: str) -> Screened:
        if self.auth is None:
            return Screened(content)
        return await self.auth.submitted(content, peer, session.host_name or "", sender)

    def __init__(
        self,
        config: Config,
        store: SqliteStore,
        bus: EventBus,
        hostname: str,
        reverse_lookup: ReverseLookup = no_reverse_lookup,
    ) -> None:
        super().__init__(config, store, bus, hostname, reverse_lookup)
        self.accounts = Accounts(config)

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        refusal = self.accounts.sender_refusal(address, session_login(session))
        if refusal is not None:
            return refusal
        return await super().handle_MAIL(server, session, envelope, address, options)

    def plan(self, sender: str, recipients: list[str]) -> Plan:
        copies: list[Copy] = []
        hops: list[Hop] = []
        by_domain: dict[str, list[str]] = {}
        for rcpt in recipients:
            domain = domain_of(rcpt)
            if self.config.is_fake_domain(domain):
                by_domain.setdefault(domain, []).append(rcpt)
            else:
                copies.append(Copy(rcpt, INBOX, held=True))
                reason = f"{domain} is not a sandbox domain: kept here, never sent anywhere"
                detail = {"mailbox": rcpt, "folder": INBOX, "domain": domain, "reason": reason}
                hops.append(Hop(Step.STORED, Outcome.HELD, detail))
        deliveries = tuple(NewDelivery(d, tuple(rcpts)) for d, rcpts in by_domain.items())
        hops += [
            Hop(Step.QUEUED, Outcome.QUEUED, {"domain": d.domain, "recipients": list(d.recipients)})
            for d in deliveries
        ]
        if sender and self.config.is_fake_domain(domain_of(sender)):
            copies.append(Copy(sender, SENT, flags=(SEEN,)))
            detail = {"mailbox": sender, "folder": SENT, "domain": domain_of(sender)}
            hops.append(Hop(Step.STORED, Outcome.SENT_COPY, detail))
        return Plan(tuple(copies), tuple(hops), deliveries)


class MxHandler(BaseHandler):
    """The inbound server of one fake domain; refuses to relay for any other.

    It also misbehaves on purpose when the domain's chaos setting says so: rejects,
    temp-fails, greylists, slows down, hangs up or rate-limits, like real servers do.
    """

    server_name = "mx"

    def __init__(
        self,
        config: Config,
        store: SqliteStore,
        bus: EventBus,
        hostname: str,
        domain: str,
        reverse_lookup: ReverseLookup = no_reverse_lookup,
        chaos: ChaosBoard | None = None,
    ) -> None:
        super().__init__(config, store, bus, hostname, reverse_lookup)
        self.domain = domain
        self.relay_domain = domain
        self.server_name = f"mx:{domain}"
        self.chaos = chaos or ChaosBoard()

    # --- chaos at each stage ------------------------------------------------------

    async def _fault(self, server: SMTP, stage: str) -> str | None:
        """The reply a fault gives at this stage, "" to hang up, None to carry on."""
        fault = self.chaos.mx(self.domain)
        if fault is None:
            return None
        if fault.mode == "delay" and fault.delay_ms:
            await asyncio.sleep(fault.delay_ms / 1000)
            return None
        if fault.stage != stage or not self.chaos.strikes(fault):
            return None
        if fault.mode in ("reject", "tempfail"):
            code = fault.reply_code()
            enhanced = "5.7.1" if code >= 500 else "4.7.1"
            text = fault.message or f"{self.domain} is set to {fault.mode} (mail-sandbox chaos)"
            return f"{code} {enhanced} {text}"
        if fault.mode == "disconnect":
            if isinstance(server.transport, asyncio.WriteTransport):
                server.transport.abort()  # a hang-up, not a polite close
            return ""
        return None

    def greeting_fault(self, server: SMTP) -> str | None:
        """Faults at the connect stage replace the greeting (no await: it is sync)."""
        fault = self.chaos.mx(self.domain)
        if fault is None or fault.stage != "connect" or not self.chaos.strikes(fault):
            return None
        if fault.mode in ("reject", "tempfail"):
            # RFC 5321 §3.1: a 554 greeting refuses the session; 421 means try later.
            code = 554 if fault.mode == "reject" else 421
            text = fault.message or f"{self.domain} is set to {fault.mode} (mail-sandbox chaos)"
            return f"{code} {self.hostname} {text}"
        if fault.mode == "disconnect":
            return ""
        return None

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        reply = await self._fault(server, "ehlo")
        if reply is not None:
            return [reply] if reply else []
        return await super().handle_EHLO(server, session, envelope, hostname, responses)

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = await self._fault(server, "mail")
        if reply is not None:
            return reply
        fault = self.chaos.mx(self.domain)
        if fault and fault.mode == "ratelimit" and self.chaos.over_rate(self.domain, fault):
            return (
                f"421 4.7.0 {self.hostname}: rate limit of {fault.per_minute} messages a minute"
                " reached; try again later"
            )
        return await super().handle_MAIL(server, session, envelope, address, options)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = await self._fault(server, "rcpt")
        if reply is not None:
            return reply
        fault = self.chaos.mx(self.domain)
        if fault and fault.mode == "greylist" and self.chaos.strikes(fault):
            client = _peer_ip(session.peer)
            wait = self.chaos.greylisted(
                self.domain, envelope.mail_from or "", address, client, fault
            )
            if wait:
                # The way real greylisting answers (postgrey): 4.7.1 and when to come back.
                return f"451 4.7.1 Greylisted: please try again in {wait:.1f} seconds"
        return await super().handle_RCPT(server, session, envelope, address, options)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        reply = await self._fault(server, "data")
        if reply is not None:
            return reply
        result = await super().handle_DATA(server, session, envelope)
        self.chaos.accepted(self.domain)
        return result

    def postmaster_domain(self) -> str:
        return self.domain

    async def screen(self, content: bytes, session: Session, sender: str, peer: str) -> Screened:
        if self.auth is None:
            return Screened(content)
        helo = session.host_name or ""
        return await self.auth.screen(self.domain, self.hostname, content, peer, helo, sender)

    def refuse_recipient(self, address: str) -> str | None:
        if domain_of(address) != self.domain:
            return (
                f"550 5.7.1 Relaying denied: this is the MX server of {self.domain}"
                f" and takes mail for @{self.domain} only"
            )
        return None

    def trace_parent(self, content: bytes) -> str | None:
        """The top Received: header, if our submission server wrote it, names its queue id."""
        match = _OUR_TRACE.match(content)
        if match and match.group(1).decode() == self.config.smtp.hostname:
            return match.group(2).decode()
        return None

    def plan(self, sender: str, recipients: list[str]) -> Plan:
        copies = tuple(Copy(rcpt, INBOX) for rcpt in recipients)
        hops = tuple(
            Hop(
                Step.STORED,
                Outcome.DELIVERED,
                {"mailbox": rcpt, "folder": INBOX, "domain": self.domain},
            )
            for rcpt in recipients
        )
        return Plan(copies, hops)


# "Received: from … by HOST (mail-sandbox) with … id QUEUEID" (ours), or the local form.
_OUR_TRACE = re.compile(
    rb"Received:(?:[^\r\n]|\r?\n[ \t])*?\bby ([^\s;]+) \(mail-sandbox\)"
    rb"(?:[^\r\n]|\r?\n[ \t])*?\bid ([0-9a-f]{12})\b",
    re.IGNORECASE,
)


def _with_dsn(deliveries: tuple[NewDelivery, ...], envelope: Envelope) -> tuple[NewDelivery, ...]:
    """The RFC 3461 parameters of MAIL and RCPT, carried by each delivery to the relay."""
    if not isinstance(envelope, SandboxEnvelope):
        return deliveries
    params = envelope.params
    per_rcpt = {
        normalize_address(address): RecipientDsn(p.notify, p.orcpt)
        for address, p in envelope.rcpt_params.items()
        if p.notify or p.orcpt
    }
    if params.ret is None and params.envid is None and not per_rcpt:
        return deliveries
    return tuple(
        replace(
            d,
            dsn=DeliveryDsn(
                params.ret,
                params.envid,
                {r: per_rcpt[r] for r in d.recipients if r in per_rcpt},
            ),
        )
        for d in deliveries
    )


def _refiled(plan: Plan, folder: str) -> Plan:
    """The same plan with every copy in ``folder`` (DMARC quarantine: Junk)."""
    return Plan(
        tuple(replace(c, folder=folder) for c in plan.copies),
        tuple(
            replace(h, detail={**h.detail, "folder": folder}) if h.step == "stored" else h
            for h in plan.hops
        ),
        plan.deliveries,
    )


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
