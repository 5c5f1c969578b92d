"""A whole sandbox inside a test: every server on a free port, a store of its own.

``Sandbox`` is a context manager for ordinary (blocking) tests: the runtime runs in an
event loop on a background thread, so the test can use smtplib, imaplib, requests or a web
framework's test client without thinking about asyncio. ``AsyncSandbox`` runs the runtime
in the caller's own loop, for async tests. Both give the addresses the listeners really
got, parsed ``Message`` objects, ``wait_for`` (which waits on the event bus, not by
polling), ``clear``/``reset`` and ``chaos(domain)`` to make a domain misbehave.

The relay is asynchronous: a message submitted to ``smtp_address`` is relayed to its
recipients' MX servers a few milliseconds later. ``wait_for(to=…)`` waits for the copy in
that mailbox, never the sender's Sent copy.

    with Sandbox() as sandbox:
        smtplib.SMTP(*sandbox.smtp_address).sendmail("app@alpha.test", ["ann@beta.test"], raw)
        message = sandbox.wait_for(to="ann@beta.test", subject="Welcome")
        assert message.links[0].startswith("https://app.test/verify")
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import shutil
import tempfile
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Generic, TypeVar

from sandbox.auth.verdicts import AuthVerdicts, read_verdicts
from sandbox.chaos import DnsFaultSetting, DomainChaos, MxFault, dns_fault
from sandbox.config import MEMORY, Config, load_config
from sandbox.events import Event, MessageStored
from sandbox.links import links_in
from sandbox.mime import Attachment, message_parts, parse
from sandbox.runtime import Endpoints, Runtime
from sandbox.store import INBOX, Hop, MessageFilter, MessageRecord, SqliteStore
from sandbox.store.lookup import relay_in_flight

__all__ = [
    "AsyncChaos",
    "AsyncSandbox",
    "Attachment",
    "Chaos",
    "Headers",
    "Message",
    "Sandbox",
    "sandbox_config",
]

T = TypeVar("T")
R = TypeVar("R")
Address = tuple[str, int]
# Retries a test can wait for: a greylisted or deferred delivery is tried again within
# a second or two, and a tempfail bounces after about 4 s rather than after minutes.
TEST_RETRY_SCHEDULE = (0.1, 0.5, 1.0, 2.0)
STOP_TIMEOUT = 30.0
_PORT_SECTIONS = ("smtp", "smtps", "pop3", "pop3s", "imap", "imaps", "dns", "mx", "http")


# --- messages as a test sees them -----------------------------------------------------


class Headers(Mapping[str, str]):
    """Header fields, case-insensitive and multi-valued, with RFC 2047 words decoded.

    ``headers["subject"]`` is the first value; ``headers.get_all("received")`` every one.
    """

    def __init__(self, fields: Iterable[tuple[str, str]]) -> None:
        self._fields = tuple(fields)
        self._first: dict[str, str] = {}
        self._names: dict[str, str] = {}
        for name, value in self._fields:
            key = name.lower()
            self._first.setdefault(key, value)
            self._names.setdefault(key, name)

    def __getitem__(self, name: str) -> str:
        return self._first[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names.values())

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._first

    def get_all(self, name: str) -> list[str]:
        key = name.lower()
        return [value for field_name, value in self._fields if field_name.lower() == key]

    def fields(self) -> tuple[tuple[str, str], ...]:
        """Every (name, value) pair, in the order of the message."""
        return self._fields

    def __repr__(self) -> str:
        return f"Headers({list(self._fields)!r})"


@dataclass(frozen=True)
class Message:
    """One copy of a message in one mailbox folder, parsed.

    ``text``/``html`` are the first inline text/plain and text/html parts, decoded, with
    ``\\n`` line endings (None when there is none); ``links`` every web URL in the inline
    text parts (see ``sandbox.links``); ``raw`` the bytes exactly as stored.
    """

    id: int
    mailbox: str
    folder: str
    sender: str | None
    to: tuple[str, ...]
    cc: tuple[str, ...]
    subject: str | None
    date: str | None
    message_id: str | None
    text: str | None
    html: str | None
    attachments: tuple[Attachment, ...]
    links: tuple[str, ...]
    raw: bytes = field(repr=False)
    held: bool
    flags: tuple[str, ...]
    envelope_from: str
    received_at: float
    # The copy's IMAP UID in its folder, the size the store records for it (octets of
    # ``raw``), and the stored message it is a copy of: the copies one server stored in
    # one SMTP transaction share ``stored_id``.
    uid: int
    size: int
    stored_id: int
    headers: Headers = field(repr=False, compare=False)
    journey: tuple[Hop, ...] = field(repr=False, compare=False)
    # The receiving MX's verdicts (``message.auth.dkim == "pass"``); None when unchecked.
    auth: AuthVerdicts | None = field(default=None, repr=False, compare=False)

    @classmethod
    def build(cls, record: MessageRecord, raw: bytes, journey: tuple[Hop, ...]) -> Message:
        parsed = parse(raw)
        text, html, attachments = message_parts(parsed)
        return cls(
            id=record.id,
            mailbox=record.mailbox,
            folder=record.folder,
            sender=record.from_addr or record.envelope_from or None,
            to=record.to,
            cc=record.cc,
            subject=record.subject,
            date=record.date,
            message_id=record.header_message_id,
            text=text,
            html=html,
            attachments=attachments,
            links=tuple(links_in(raw)),
            raw=raw,
            held=record.held,
            flags=record.flags,
            envelope_from=record.envelope_from,
            received_at=record.received_at,
            uid=record.uid,
            size=record.size,
            stored_id=record.message_id,
            headers=Headers(_header_fields(parsed)),
            journey=journey,
            auth=read_verdicts(raw),
        )

    def email(self) -> EmailMessage:
        """The message as the standard library parses it (a new object each call)."""
        return parse(self.raw)

    def summary(self) -> str:
        """One line: id, where it is, who sent it, the subject."""
        held = "  [held]" if self.held else ""
        return (
            f"#{self.id} {self.mailbox}/{self.folder} from {self.sender or '<>'}"
            f" {self.subject or '(no subject)'!r}{held}"
        )


def _header_fields(message: EmailMessage) -> list[tuple[str, str]]:
    fields = []
    for name, value in message.raw_items():
        try:
            text = str(message.policy.header_fetch_parse(name, value))
        except Exception:  # a malformed header: show it as it came
            text = str(value)
        fields.append((name, " ".join(text.split())))
    return fields


# --- configuration --------------------------------------------------------------------


def sandbox_config(
    domains: Iterable[str] | None = None, *, config: Config | None = None, data: str = MEMORY
) -> Config:
    """The configuration a test sandbox runs with.

    Every listener on port 0 (the ready addresses say which ports it got) and ``data`` as
    the store. Without ``config`` the defaults apply (no environment, no file) with quick
    relay retries (``TEST_RETRY_SCHEDULE``); with it, its domains, accounts, chaos and
    limits are kept, its ports and data file are not.
    """
    names = tuple(domains) if domains is not None else None
    if names is not None and not names:
        raise ValueError("a sandbox needs at least one domain")
    flags: dict[str, Any] = {"data": data}
    if names is not None:
        flags["domains"] = names
    base = load_config(env={}, flags=flags)
    if config is None:
        config = replace(base, relay=replace(base.relay, retry_schedule=TEST_RETRY_SCHEDULE))
    else:
        config = replace(config, data=data)
        if names is not None:
            config = replace(config, domains=base.domains)
    ports = {name: replace(getattr(config, name), port=0) for name in _PORT_SECTIONS}
    return replace(config, **ports)


# --- the engine: runs in the runtime's loop ---------------------------------------------


class _Engine:
    """The work behind both APIs; every method runs in the runtime's event loop."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.initial_chaos = runtime.chaos.settings()

    @property
    def store(self) -> SqliteStore:
        return self.runtime.store

    async def build(self, record: MessageRecord) -> Message:
        raw = await self.store.raw(record.message_id) or b""
        return Message.build(record, raw, await self.store.journey_of(record))

    async def messages(self, flt: MessageFilter) -> list[Message]:
        return [await self.build(record) for record in await self.store.list_messages(flt)]

    async def message(self, entry_id: int) -> Message:
        record = await self.store.get_message(entry_id)
        if record is None:
            raise LookupError(f"no message with id {entry_id}")
        return await self.build(record)

    async def wait_for(self, flt: MessageFilter, seconds: float, new: bool) -> Message:
        """The newest match already stored (unless ``new``), else the first to arrive;
        returned once its journey is complete for the folder it matched.

        Subscribing comes before looking at the store, so a message stored in between
        is seen either way. A relayed copy is stored by the MX server a moment before the
        relay records its "delivered" hop; waiting for that hop means a test can assert on
        ``message.journey`` at once.
        """
        subscription = self.runtime.bus.subscribe()
        try:
            after = await self.store.last_id()
            async with asyncio.timeout(seconds):
                record = await self.store.newest_message(flt) if not new else None
                while record is None:
                    event = await subscription.get()
                    if isinstance(event, MessageStored) and _may_match(event, flt):
                        found = await self.store.list_messages(
                            replace(flt, after_id=after), limit=1
                        )
                        record = found[0] if found else None
                while await relay_in_flight(self.store, record):
                    await subscription.get()  # the relay's attempt events
                return await self.build(record)
        except TimeoutError:
            raise TimeoutError(await self.timeout_message(flt, seconds)) from None
        finally:
            subscription.close()

    async def wait_for_count(self, flt: MessageFilter, count: int, seconds: float) -> list[Message]:
        """Every match, oldest first, once at least ``count`` are stored and none of them
        still waits for the relay's record of its attempt (as ``wait_for``)."""
        subscription = self.runtime.bus.subscribe()
        try:
            async with asyncio.timeout(seconds):
                while True:
                    records = await self.store.list_messages(flt)
                    if len(records) >= count:
                        for record in records:
                            while await relay_in_flight(self.store, record):
                                await subscription.get()
                        return [await self.build(record) for record in records]
                    await subscription.get()  # anything stored, moved or deleted since
        except TimeoutError:
            found = len(await self.store.list_messages(flt))
            raise TimeoutError(
                f"{found} of {count} messages {describe(flt)} arrived within {seconds:g}s; "
                + await self.report()
            ) from None
        finally:
            subscription.close()

    async def journal(self, kind: str) -> list[dict[str, Any]]:
        """The journaled events of one kind, oldest first. The journal is written in the
        background: an empty write first means everything announced before is committed."""
        await self.store.write(_nothing)
        return [data for _, _, _, data in await self.store.events(kind=kind)]

    async def timeout_message(self, flt: MessageFilter, seconds: float) -> str:
        return f"no message {describe(flt)} arrived within {seconds:g}s; " + await self.report()

    async def report(self) -> str:
        """What did arrive, and what the relay is still working on."""
        records = await self.store.list_messages()
        lines = [f"{len(records)} message{'' if len(records) == 1 else 's'} stored"]
        lines[0] += ":" if records else "."
        for record in records:
            held = "  [held]" if record.held else ""
            lines.append(
                f"  #{record.id} {record.mailbox}/{record.folder}"
                f" from {record.from_addr or record.envelope_from or '<>'}"
                f" to {', '.join(record.to) or '-'}"
                f" {record.subject or '(no subject)'!r}{held}"
            )
        pending = await self.store.pending_deliveries()
        if pending:
            lines.append(f"{len(pending)} relay deliveries not done yet:")
            for delivery in pending:
                lines.append(
                    f"  {delivery.domain} to {', '.join(delivery.recipients)}:"
                    f" {delivery.state} after {delivery.attempts} tries,"
                    f" last reply {delivery.last_reply or '-'}"
                )
        return "\n".join(lines)

    async def clear(self) -> int:
        return await self.store.clear()

    async def reset(self) -> None:
        """Messages gone (and with them pending deliveries), chaos as configured."""
        for domain in self.runtime.config.domains:
            current = self.runtime.chaos.settings().get(domain.name, DomainChaos())
            wanted = self.initial_chaos.get(domain.name, DomainChaos())
            if current != wanted:
                await self.runtime.set_chaos(domain.name, wanted)
        await self.store.clear(with_queue=True)

    async def change_chaos(
        self, domain: str, change: Callable[[DomainChaos], DomainChaos]
    ) -> DomainChaos:
        current = self.runtime.chaos.settings().get(domain, DomainChaos())
        updated = change(current)
        await self.runtime.set_chaos(domain, updated)
        return updated


async def _nothing(conn: Any) -> None:
    return None


def _may_match(event: MessageStored, flt: MessageFilter) -> bool:
    """Cheap test on the event's entries before asking the store."""
    for _, mailbox, folder in event.entries:
        if flt.folder is not None and folder != flt.folder:
            continue
        if flt.to is not None:
            to = flt.to.strip().strip("<>").lower()
            if "@" in to and not to.startswith("@"):
                if mailbox != to:
                    continue
            elif mailbox.rpartition("@")[2] != to.lstrip("@"):
                continue
        return True
    return False


def describe(flt: MessageFilter) -> str:
    parts = []
    if flt.to:
        parts.append(f"to {flt.to}")
    if flt.sender:
        parts.append(f"from {flt.sender}")
    if flt.subject:
        parts.append(f"with subject containing {flt.subject!r}")
    parts.append(f"in folder {flt.folder}" if flt.folder else "in any folder")
    return " ".join(parts)


def _filter(
    to: str | None, sender: str | None, subject: str | None, folder: str | None
) -> MessageFilter:
    return MessageFilter(to=to, sender=sender, subject=subject, folder=folder)


# --- chaos ------------------------------------------------------------------------------


class _ChaosControl(Generic[R]):
    """Faults for one domain's MX server and DNS zone; each call replaces that half."""

    def __init__(
        self, domain: str, apply: Callable[[Callable[[DomainChaos], DomainChaos]], R]
    ) -> None:
        self.domain = domain
        self._apply = apply

    def _mx(self, fault: MxFault) -> R:
        return self._apply(lambda current: DomainChaos(fault, current.dns, current.auth))

    def greylist(self, seconds: float = 1.0, *, probability: float = 1.0) -> R:
        """451 4.7.1 for each new sender/recipient/client triplet for ``seconds``."""
        return self._mx(MxFault("greylist", seconds=seconds, probability=probability))

    def reject(
        self,
        code: int = 550,
        stage: str = "rcpt",
        *,
        message: str | None = None,
        probability: float = 1.0,
    ) -> R:
        """A 5xx at ``stage`` (connect, ehlo, mail, rcpt, data): the relay bounces."""
        return self._mx(MxFault("reject", code, stage, message=message, probability=probability))

    def tempfail(
        self,
        code: int = 451,
        stage: str = "rcpt",
        *,
        message: str | None = None,
        probability: float = 1.0,
    ) -> R:
        """A 4xx at ``stage``: the relay retries, then bounces."""
        return self._mx(MxFault("tempfail", code, stage, message=message, probability=probability))

    def delay(self, ms: int) -> R:
        """Every reply of the MX server ``ms`` milliseconds late."""
        if ms <= 0:
            raise ValueError("delay needs ms above 0")
        return self._mx(MxFault("delay", delay_ms=ms))

    def disconnect(self, stage: str = "data", *, probability: float = 1.0) -> R:
        """Hang up at ``stage`` without a reply."""
        return self._mx(MxFault("disconnect", stage=stage, probability=probability))

    def ratelimit(self, per_minute: int) -> R:
        """421 once ``per_minute`` messages were accepted in the last minute."""
        return self._mx(MxFault("ratelimit", per_minute=per_minute))

    def dns(self, mode: str, ms: int = 0) -> R:
        """The domain's DNS zone: ``servfail``, ``timeout``, ``nxdomain`` or ``delay`` (ms)."""
        setting: DnsFaultSetting = dns_fault(mode, ms)
        return self._apply(lambda current: DomainChaos(current.mx, setting, current.auth))

    def auth(self, mode: str) -> R:
        """An authentication fault (``sandbox.chaos.AUTH_MODES``): ``"forwarder"``,
        ``"spf-outside"`` (mail to the domain), ``"txt-timeout"``, ``"no-key"`` (its DNS)."""
        name = mode if mode.startswith("auth-") else f"auth-{mode}"
        return self._apply(lambda current: DomainChaos(current.mx, current.dns, name))

    def off(self) -> R:
        """No faults at all for the domain (its MX server and its DNS zone)."""
        return self._apply(lambda current: DomainChaos())


class Chaos(_ChaosControl[DomainChaos]):
    """``sandbox.chaos("beta.test").greylist(seconds=1)``; returns the setting in force."""


class AsyncChaos(_ChaosControl[Awaitable[DomainChaos]]):
    """``await sandbox.chaos("beta.test").greylist(seconds=1)``."""


# --- addresses, shared by both APIs ----------------------------------------------------


class _Running:
    """Where the listeners of a started sandbox are."""

    _endpoints: Endpoints | None
    _config: Config
    _ca_path: Path | None
    _events: list[Event]

    def _current(self) -> tuple[Endpoints | None, Path | None]:
        return self._endpoints, self._ca_path

    def _ready(self) -> Endpoints:
        endpoints, _ = self._current()
        if endpoints is None:
            raise RuntimeError("the sandbox is not running: use it as a context manager")
        return endpoints

    def _extra(self, name: str) -> Address:
        host, port = self._ready().extra[name]
        return (str(host), int(port))

    @property
    def running(self) -> bool:
        return self._current()[0] is not None

    def address(self, listener: str) -> Address:
        """The address a listener got, by its name in the ready line: ``"smtp"``,
        ``"pop3"``, ``"imaps"``, …, for tests that run over several protocols."""
        if listener == "smtp":
            return self.smtp_address
        if listener == "dns":
            return self.dns_address
        return self._extra(listener)

    @property
    def events(self) -> list[Event]:
        """Every event the runtime announced since the sandbox started, in order (what
        the servers told the TUI, IMAP IDLE and ``wait_for``): for tests of announcements."""
        return list(self._events)

    @property
    def config(self) -> Config:
        return self._config

    @property
    def domains(self) -> tuple[str, ...]:
        return tuple(d.name for d in self._config.domains)

    @property
    def smtp_address(self) -> Address:
        return self._ready().smtp

    @property
    def smtps_address(self) -> Address:
        return self._extra("smtps")

    @property
    def pop3_address(self) -> Address:
        return self._extra("pop3")

    @property
    def pop3s_address(self) -> Address:
        return self._extra("pop3s")

    @property
    def imap_address(self) -> Address:
        return self._extra("imap")

    @property
    def imaps_address(self) -> Address:
        return self._extra("imaps")

    @property
    def dns_address(self) -> Address:
        return self._ready().dns

    @property
    def http_url(self) -> str:
        """Base URL of the HTTP API (Mailpit's v1 paths): ``http://127.0.0.1:PORT``."""
        host, port = self._extra("http")
        return f"http://{host}:{port}"

    @property
    def mx_addresses(self) -> dict[str, Address]:
        return dict(self._ready().mx)

    @property
    def data_path(self) -> str:
        """The SQLite file (``:memory:`` when in memory): ``mail-sandbox … --data PATH``."""
        return self._config.data

    @property
    def ca_path(self) -> Path:
        """The CA certificate to trust for STARTTLS and the implicit-TLS listeners."""
        self._ready()
        _, ca_path = self._current()
        if ca_path is None:
            raise RuntimeError("the sandbox has no TLS certificate")
        return ca_path

    def chaos_domain(self, domain: str) -> str:
        domain = domain.lower()
        if not self._config.is_fake_domain(domain):
            raise ValueError(
                f"{domain} is not one of this sandbox's domains ({', '.join(self.domains)})"
            )
        return domain


@functools.cache
def _shared_key_dir() -> Path:
    """One folder of DKIM keys for every throw-away sandbox of this process: an RSA 2048
    key takes a good part of a second to make, three of them would dwarf a start-up."""
    folder = Path(tempfile.mkdtemp(prefix="mail-sandbox-test-dkim-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def _test_keys(config: Config, tempdir: Path | None) -> Config:
    """A throw-away sandbox (its own temporary folder, or ``:memory:``) takes the
    process's shared keys; one on a data file of yours keeps its keys beside it."""
    if (tempdir is None and config.data != MEMORY) or config.dkim.key_dir:
        return config
    return replace(config, dkim=replace(config.dkim, key_dir=str(_shared_key_dir())))


def _temporary_data(data: str | Path | None) -> tuple[str, Path | None]:
    """The store: a file in a new temporary folder unless ``data`` says otherwise."""
    if data is not None:
        return str(data), None
    folder = Path(tempfile.mkdtemp(prefix="mail-sandbox-"))
    return str(folder / "sandbox.sqlite3"), folder


# --- the blocking API -------------------------------------------------------------------


class Sandbox(_Running):
    """A sandbox in a background thread, for blocking tests.

    ``Sandbox(domains=["shop.test", "bank.test"])``, or ``Sandbox(config=config)`` to keep
    a configuration's domains, accounts and chaos. ``data`` defaults to a file in a new
    temporary folder (removed on close); ``":memory:"`` keeps even that in memory.
    """

    def __init__(
        self,
        domains: Iterable[str] | None = None,
        *,
        config: Config | None = None,
        data: str | Path | None = None,
    ) -> None:
        self._data, self._tempdir = _temporary_data(data)
        self._config = _test_keys(
            sandbox_config(domains, config=config, data=self._data), self._tempdir
        )
        self._endpoints = None
        self._ca_path = None
        self._events = []
        self._runtime: Runtime | None = None
        self._engine: _Engine | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # life cycle

    def start(self) -> Sandbox:
        if self._loop is not None:
            raise RuntimeError("the sandbox is already running")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="mail-sandbox", daemon=True
        )
        self._thread.start()
        runtime = Runtime(self._config)
        self._runtime = runtime
        try:
            self._endpoints = self._call(runtime.start())
        except BaseException:
            self._shut_down()
            raise
        runtime.bus.listen(self._events.append)
        self._ca_path = runtime.tls.ca_path if runtime.tls is not None else None
        self._engine = _Engine(runtime)
        return self

    def close(self) -> None:
        try:
            if self._runtime is not None and self._endpoints is not None:
                self._call(self._runtime.stop(), STOP_TIMEOUT)
        finally:
            self._shut_down()

    def _shut_down(self) -> None:
        self._endpoints = None
        self._engine = None
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
            if thread is not None:
                thread.join(STOP_TIMEOUT)
            loop.close()
        if self._tempdir is not None:
            shutil.rmtree(self._tempdir, ignore_errors=True)
            self._tempdir = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        if self._loop is None:
            coro.close()
            raise RuntimeError("the sandbox is not running: use it as a context manager")
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout)

    def _live(self) -> _Engine:
        if self._engine is None:
            raise RuntimeError("the sandbox is not running: use it as a context manager")
        return self._engine

    @property
    def runtime(self) -> Runtime:
        """The runtime itself; its coroutines must run through ``call``."""
        if self._runtime is None:
            raise RuntimeError("the sandbox is not running")
        return self._runtime

    def call(self, func: Callable[[Runtime], Awaitable[T]], timeout: float | None = 30.0) -> T:
        """Run ``func(runtime)`` in the sandbox's loop and return its result."""
        runtime = self.runtime

        async def run() -> T:
            return await func(runtime)

        return self._call(run(), timeout)

    # the API

    def messages(
        self,
        to: str | None = None,
        sender: str | None = None,
        subject: str | None = None,
        *,
        folder: str | None = INBOX,
    ) -> list[Message]:
        """Stored messages, oldest first; ``to`` is a mailbox or ``@domain``.

        By default only INBOX copies (delivered or held mail); ``folder=None`` adds the
        senders' Sent copies and every other folder.
        """
        return self._call(self._live().messages(_filter(to, sender, subject, folder)))

    def message(self, id: int) -> Message:
        return self._call(self._live().message(id))

    def wait_for(
        self,
        to: str | None = None,
        subject: str | None = None,
        *,
        sender: str | None = None,
        folder: str | None = INBOX,
        timeout: float = 5.0,
        new: bool = False,
    ) -> Message:
        """The newest matching message, waiting up to ``timeout`` seconds for one.

        ``new=True`` ignores matches stored before the call. Raises ``TimeoutError``
        naming what it waited for and listing what did arrive.
        """
        flt = _filter(to, sender, subject, folder)
        return self._call(self._live().wait_for(flt, timeout, new), timeout + STOP_TIMEOUT)

    def wait_for_count(
        self,
        count: int,
        to: str | None = None,
        subject: str | None = None,
        *,
        sender: str | None = None,
        folder: str | None = INBOX,
        timeout: float = 5.0,
    ) -> list[Message]:
        """Every matching message, oldest first, once at least ``count`` are stored
        (several recipients, retries); raises ``TimeoutError`` saying how many came."""
        flt = _filter(to, sender, subject, folder)
        return self._call(self._live().wait_for_count(flt, count, timeout), timeout + STOP_TIMEOUT)

    def journal(self, kind: str) -> list[dict[str, Any]]:
        """The journaled events of one kind (``"smtp.session"``, ``"dns.query"``, …),
        oldest first: what ``mail-sandbox`` records of each SMTP session, DNS query and
        relay attempt."""
        return self._call(self._live().journal(kind))

    def clear(self) -> int:
        """Delete every message copy; returns how many. Relay deliveries not yet made
        are still made (as with ``mail-sandbox clear``); ``reset()`` drops them too."""
        return self._call(self._live().clear())

    def reset(self) -> None:
        """``clear()`` with the queue's waiting deliveries, and every domain's chaos back
        to the configuration's."""
        self._call(self._live().reset())

    def chaos(self, domain: str) -> Chaos:
        domain = self.chaos_domain(domain)
        engine = self._live()
        return Chaos(domain, lambda change: self._call(engine.change_chaos(domain, change)))

    def report(self) -> str:
        """Every stored message and pending relay delivery, one a line."""
        return self._call(self._live().report())

    def as_async(self) -> AsyncSandbox:
        """The same sandbox, with the async API, for async tests in any event loop."""
        return _ThreadedView(self)


# --- the async API ----------------------------------------------------------------------


class AsyncSandbox(_Running):
    """A sandbox in the caller's event loop: ``async with AsyncSandbox() as sandbox:``."""

    def __init__(
        self,
        domains: Iterable[str] | None = None,
        *,
        config: Config | None = None,
        data: str | Path | None = None,
    ) -> None:
        self._data, self._tempdir = _temporary_data(data)
        self._config = _test_keys(
            sandbox_config(domains, config=config, data=self._data), self._tempdir
        )
        self._endpoints = None
        self._ca_path = None
        self._events = []
        self._runtime: Runtime | None = None
        self._engine: _Engine | None = None

    async def start(self) -> AsyncSandbox:
        if self._runtime is not None:
            raise RuntimeError("the sandbox is already running")
        runtime = Runtime(self._config)
        self._runtime = runtime
        try:
            self._endpoints = await runtime.start()
        except BaseException:
            self._runtime = None
            self._remove_tempdir()
            raise
        runtime.bus.listen(self._events.append)
        self._ca_path = runtime.tls.ca_path if runtime.tls is not None else None
        self._engine = _Engine(runtime)
        return self

    async def close(self) -> None:
        runtime, self._runtime = self._runtime, None
        self._endpoints = None
        self._engine = None
        try:
            if runtime is not None:
                await runtime.stop()
        finally:
            self._remove_tempdir()

    def _remove_tempdir(self) -> None:
        if self._tempdir is not None:
            shutil.rmtree(self._tempdir, ignore_errors=True)
            self._tempdir = None

    async def __aenter__(self) -> AsyncSandbox:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _run(self, work: Callable[[_Engine], Coroutine[Any, Any, T]]) -> T:
        """Run ``work`` on the engine where its runtime lives (here: this loop)."""
        if self._engine is None:
            raise RuntimeError("the sandbox is not running: use it with async with")
        return await work(self._engine)

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            raise RuntimeError("the sandbox is not running")
        return self._runtime

    async def messages(
        self,
        to: str | None = None,
        sender: str | None = None,
        subject: str | None = None,
        *,
        folder: str | None = INBOX,
    ) -> list[Message]:
        """As ``Sandbox.messages``."""
        flt = _filter(to, sender, subject, folder)
        return await self._run(lambda engine: engine.messages(flt))

    async def message(self, id: int) -> Message:
        return await self._run(lambda engine: engine.message(id))

    async def wait_for(
        self,
        to: str | None = None,
        subject: str | None = None,
        *,
        sender: str | None = None,
        folder: str | None = INBOX,
        timeout: float = 5.0,  # noqa: ASYNC109 - the public API mirrors Sandbox.wait_for
        new: bool = False,
    ) -> Message:
        """As ``Sandbox.wait_for``."""
        flt = _filter(to, sender, subject, folder)
        return await self._run(lambda engine: engine.wait_for(flt, timeout, new))

    async def wait_for_count(
        self,
        count: int,
        to: str | None = None,
        subject: str | None = None,
        *,
        sender: str | None = None,
        folder: str | None = INBOX,
        timeout: float = 5.0,  # noqa: ASYNC109 - the public API mirrors Sandbox.wait_for
    ) -> list[Message]:
        """As ``Sandbox.wait_for_count``."""
        flt = _filter(to, sender, subject, folder)
        return await self._run(lambda engine: engine.wait_for_count(flt, count, timeout))

    async def journal(self, kind: str) -> list[dict[str, Any]]:
        """As ``Sandbox.journal``."""
        return await self._run(lambda engine: engine.journal(kind))

    async def clear(self) -> int:
        return await self._run(lambda engine: engine.clear())

    async def reset(self) -> None:
        await self._run(lambda engine: engine.reset())

    def chaos(self, domain: str) -> AsyncChaos:
        domain = self.chaos_domain(domain)

        def apply(change: Callable[[DomainChaos], DomainChaos]) -> Awaitable[DomainChaos]:
            return self._run(lambda engine: engine.change_chaos(domain, change))

        return AsyncChaos(domain, apply)

    async def report(self) -> str:
        return await self._run(lambda engine: engine.report())


class _ThreadedView(AsyncSandbox):
    """The async API over a ``Sandbox`` whose runtime runs in its own thread."""

    def __init__(self, sandbox: Sandbox) -> None:
        self._sandbox = sandbox
        self._config = sandbox.config
        self._events = sandbox._events
        self._tempdir = None
        self._runtime = None
        self._engine = None

    def _current(self) -> tuple[Endpoints | None, Path | None]:
        return self._sandbox._current()

    @property
    def runtime(self) -> Runtime:
        return self._sandbox.runtime

    async def start(self) -> AsyncSandbox:
        raise RuntimeError("this view shares a running Sandbox; start and close that one")

    async def close(self) -> None:
        raise RuntimeError("this view shares a running Sandbox; start and close that one")

    async def _run(self, work: Callable[[_Engine], Coroutine[Any, Any, T]]) -> T:
        engine = self._sandbox._live()
        loop = self._sandbox._loop
        if loop is None:
            raise RuntimeError("the sandbox is not running")
        future = asyncio.run_coroutine_threadsafe(work(engine), loop)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            future.cancel()
            raise
