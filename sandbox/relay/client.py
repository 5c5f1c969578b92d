"""One delivery attempt over SMTP, like a real MTA: host after host until one answers.

A host where nothing listens (or that drops us before the greeting) is skipped for the
next one, and the fallback shows in the hops. Once a server has answered, its replies
decide: 2xx delivered, 4xx deferred, 5xx bounced — per recipient after RCPT.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

import aiosmtplib

from sandbox.relay.routing import Route
from sandbox.store import Hop, Outcome, Step

CONNECT_TIMEOUT = 5.0
COMMAND_TIMEOUT = 30.0
IDLE_SECONDS = 5.0  # how long an idle connection is kept for reuse


@dataclass(frozen=True)
class Attempt:
    """What one attempt achieved, per recipient, and how."""

    delivered: tuple[str, ...] = ()
    deferred: tuple[str, ...] = ()
    bounced: tuple[tuple[str, str], ...] = ()  # (recipient, reply)
    reply: str = ""  # the reply that decided (for the queue's last_reply)
    remote: str | None = None  # the host that answered
    hops: tuple[Hop, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Envelope:
    sender: str  # "" for the null sender of bounces
    recipients: tuple[str, ...]
    raw: bytes
    helo: str
    source_address: str | None


Key = tuple[str, int, str | None, str]  # address, port, source address, EHLO name


@dataclass
class _Idle:
    client: aiosmtplib.SMTP
    tls: bool
    since: float


class ConnectionCache:
    """Idle connections kept for the next delivery to the same server, as postfix's
    connection cache does: a burst to one domain then costs one TCP and EHLO, not one each.
    """

    def __init__(self, idle_seconds: float = IDLE_SECONDS) -> None:
        self._idle: dict[Key, list[_Idle]] = {}
        self._idle_seconds = idle_seconds

    def take(self, key: Key) -> _Idle | None:
        entries = self._idle.get(key, [])
        while entries:
            entry = entries.pop()
            if entry.client.is_connected and time.monotonic() - entry.since < self._idle_seconds:
                return entry
            entry.client.close()
        return None

    def give(self, key: Key, client: aiosmtplib.SMTP, tls: bool) -> None:
        self._idle.setdefault(key, []).append(_Idle(client, tls, time.monotonic()))
        # An idle connection is closed when its time is up, not when next looked at: the
        # MX server (and its SMTP log) sees the session end after idle_seconds.
        asyncio.get_running_loop().call_later(self._idle_seconds, self._expire)

    def _expire(self) -> None:
        now = time.monotonic()
        for key, entries in list(self._idle.items()):
            keep = [e for e in entries if now - e.since < self._idle_seconds]
            for entry in entries:
                if entry not in keep:
                    entry.client.close()
            if keep:
                self._idle[key] = keep
            else:
                del self._idle[key]

    def close_all(self) -> None:
        """Forget every connection (chaos changed, or the relay stops)."""
        for entries in self._idle.values():
            for entry in entries:
                entry.client.close()
        self._idle.clear()


async def deliver(
    envelope: Envelope,
    route: Route,
    domain: str,
    tls_context: ssl.SSLContext | None = None,
    cache: ConnectionCache | None = None,
) -> Attempt:
    hops: list[Hop] = []
    last_failure = "451 4.4.1 no MX host answered"
    for target in route.targets:
        for address in target.addresses:
            where = {"domain": domain, "host": target.host, "address": address, "port": target.port}
            if not _is_sandbox_address(address):
                # Never a connection to a real host, whatever a zone's records say.
                reason = "not a loopback address: the sandbox never connects outside the machine"
                hops.append(Hop(Step.CONNECT, Outcome.REFUSED, {**where, "error": reason}))
                last_failure = f"451 4.4.1 {target.host} [{address}]: {reason}"
                continue
            key: Key = (address, target.port, envelope.source_address, envelope.helo)
            idle = cache.take(key) if cache is not None else None
            if idle is not None:
                hops.append(Hop(Step.CONNECT, Outcome.REUSED, where))
                attempt = await _transaction(
                    idle.client, envelope, target.host, where, hops, tls_context, idle.tls
                )
                if attempt is not None:
                    _release(cache, key, idle.client, attempt, idle.tls)
                    return attempt
                idle.client.close()  # it had gone stale: open a fresh one below
            client = aiosmtplib.SMTP(
                hostname=address,
                port=target.port,
                local_hostname=envelope.helo,
                source_address=(envelope.source_address, 0) if envelope.source_address else None,
                timeout=COMMAND_TIMEOUT,
                start_tls=False,
                use_tls=False,
            )
            try:
                await client.connect(timeout=CONNECT_TIMEOUT)
            except aiosmtplib.SMTPConnectResponseError as exc:
                # A 5xx greeting refuses the session for good (RFC 5321 §3.1); 4xx: next host.
                reply = _reply(exc)
                hops.append(Hop(Step.CONNECT, Outcome.REFUSED, {**where, "reply": reply}))
                if exc.code >= 500:
                    bounced = tuple((r, reply) for r in envelope.recipients)
                    return Attempt(
                        bounced=bounced, reply=reply, remote=target.host, hops=tuple(hops)
                    )
                last_failure = reply
                continue
            except (aiosmtplib.SMTPException, OSError) as exc:
                last_failure = f"451 4.4.1 {target.host} [{address}]:{target.port}: {_why(exc)}"
                hops.append(Hop(Step.CONNECT, Outcome.FAILED, {**where, "error": _why(exc)}))
                continue
            hops.append(Hop(Step.CONNECT, Outcome.CONNECTED, where))
            tls = False
            try:
                await client.ehlo()
                if tls_context is not None and client.supports_extension("starttls"):
                    await client.starttls(tls_context=tls_context, server_hostname=target.host)
                    await client.ehlo()  # RFC 3207 §4.2: what was learnt before TLS is void
                    tls = True
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                client.close()
                return _lost(envelope, target.host, where, hops, exc)
            attempt = await _transaction(
                client, envelope, target.host, where, hops, tls_context, tls, fresh=True
            )
            assert attempt is not None  # a fresh connection is never "stale"
            _release(cache, key, client, attempt, tls)
            return attempt
    return Attempt(deferred=envelope.recipients, reply=last_failure, hops=tuple(hops))


def _is_sandbox_address(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _release(
    cache: ConnectionCache | None, key: Key, client: aiosmtplib.SMTP, attempt: Attempt, tls: bool
) -> None:
    """Keep the connection after a clean transaction; otherwise it is closed."""
    if cache is not None and attempt.delivered and client.is_connected:
        cache.give(key, client, tls)
    elif client.is_connected:
        client.close()


def _lost(
    envelope: Envelope,
    host: str,
    where: dict[str, Any],
    hops: list[Hop],
    exc: BaseException,
    bounced: tuple[tuple[str, str], ...] = (),
) -> Attempt:
    # Dropped mid-transaction: RFC 5321 §4.1.1.4/§6.1, nothing was accepted, retry later;
    # a recipient already refused for good at RCPT stays refused.
    reply = f"451 4.4.2 {host}: connection lost ({_why(exc)})"
    hops.append(Hop(Step.SMTP, Outcome.DEFERRED, {**where, "reply": reply}))
    refused = {rcpt for rcpt, _ in bounced}
    deferred = tuple(r for r in envelope.recipients if r not in refused)
    return Attempt(deferred=deferred, bounced=bounced, reply=reply, remote=host, hops=tuple(hops))


def _undecided(
    envelope: Envelope, deferred: list[str], bounced: list[tuple[str, str]]
) -> tuple[str, ...]:
    """Recipients no RCPT reply refused: the ones a later reply (DATA, MAIL) decides."""
    refused = set(deferred) | {rcpt for rcpt, _ in bounced}
    return tuple(r for r in envelope.recipients if r not in refused)


async def _transaction(
    client: aiosmtplib.SMTP,
    envelope: Envelope,
    host: str,
    where: dict[str, Any],
    hops: list[Hop],
    tls_context: ssl.SSLContext | None,
    tls: bool,
    fresh: bool = False,
) -> Attempt | None:
    """One MAIL…DATA exchange; None when a reused connection turns out to be dead."""
    deferred: list[str] = []
    bounced: list[tuple[str, str]] = []
    try:
        needs_utf8 = not all(a.isascii() for a in (envelope.sender, *envelope.recipients))
        if needs_utf8 and not client.supports_extension("smtputf8"):
            reply = f"553 5.6.7 {host} does not offer SMTPUTF8, needed for these addresses"
            hops.append(Hop(Step.SMTP, Outcome.BOUNCED, {**where, "reply": reply}))
            await _quit(client)
            return Attempt(
                bounced=tuple((r, reply) for r in envelope.recipients),
                reply=reply,
                remote=host,
                hops=tuple(hops),
            )
        options = _mail_options(client, envelope, needs_utf8)
        encoding = "utf-8" if needs_utf8 else "ascii"
        try:
            await client.mail(envelope.sender, options=options, encoding=encoding)
        except aiosmtplib.SMTPServerDisconnected:
            if not fresh:
                hops.pop()  # the "reused" hop: that connection was already gone
                return None
            raise
        accepted: list[str] = []
        deferred_reply = ""
        for rcpt in envelope.recipients:
            try:
                await client.rcpt(rcpt, encoding=encoding)
                accepted.append(rcpt)
            except aiosmtplib.SMTPResponseException as exc:
                reply = _reply(exc)
                if exc.code < 500:
                    deferred.append(rcpt)
                    deferred_reply = deferred_reply or reply
                else:
                    bounced.append((rcpt, reply))
                detail = {**where, "recipient": rcpt, "reply": reply}
                hops.append(Hop(Step.SMTP, Outcome.RCPT_REFUSED, detail))
        if not accepted:
            await _quit(client)
            decided = bounced[0][1] if bounced else deferred_reply
            return Attempt(
                deferred=tuple(deferred),
                bounced=tuple(bounced),
                reply=decided,
                remote=host,
                hops=tuple(hops),
            )
        response = await client.data(envelope.raw)
        reply = f"{response.code} {response.message}"
        hops.append(
            Hop(
                Step.SMTP,
                Outcome.DELIVERED,
                {**where, "recipients": accepted, "reply": reply, "tls": tls},
            )
        )
        return Attempt(
            delivered=tuple(accepted),
            deferred=tuple(deferred),
            bounced=tuple(bounced),
            reply=reply,
            remote=host,
            hops=tuple(hops),
        )
    except aiosmtplib.SMTPResponseException as exc:
        # RFC 5321 §3.3: the DATA (or MAIL) reply speaks for the recipients not refused at
        # RCPT; a recipient refused there keeps its own outcome.
        reply = _reply(exc)
        outcome = Outcome.DEFERRED if exc.code < 500 else Outcome.BOUNCED
        hops.append(Hop(Step.SMTP, outcome, {**where, "reply": reply}))
        await _quit(client)
        undecided = _undecided(envelope, deferred, bounced)
        if exc.code < 500:
            deferred += undecided
        else:
            bounced += [(r, reply) for r in undecided]
        return Attempt(
            deferred=tuple(deferred),
            bounced=tuple(bounced),
            reply=reply,
            remote=host,
            hops=tuple(hops),
        )
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        client.close()
        return _lost(envelope, host, where, hops, exc, tuple(bounced))


def _mail_options(client: aiosmtplib.SMTP, envelope: Envelope, needs_utf8: bool) -> list[str]:
    options = []
    if client.supports_extension("size"):
        options.append(f"SIZE={len(envelope.raw)}")
    if client.supports_extension("8bitmime") and not envelope.raw.isascii():
        options.append("BODY=8BITMIME")
    if needs_utf8:
        options.append("SMTPUTF8")
    return options


async def _quit(client: aiosmtplib.SMTP) -> None:
    with contextlib.suppress(aiosmtplib.SMTPException, OSError):
        await client.quit()


def _reply(exc: aiosmtplib.SMTPResponseException) -> str:
    return f"{exc.code} {exc.message}".strip()


def _why(exc: BaseException) -> str:
    cause = exc.__cause__
    if isinstance(cause, OSError) and not isinstance(exc, ConnectionRefusedError):
        exc = cause  # aiosmtplib wraps the socket error; the socket error says more
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (nothing listens there)"
    if isinstance(exc, aiosmtplib.SMTPConnectTimeoutError | TimeoutError):
        return "timed out"
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0]
