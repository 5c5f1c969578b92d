"""Starting and stopping every part of a sandbox in one event loop.

The CLI's ``serve``, the TUI and the test helpers all run a ``Runtime``; it owns the
store, the event bus and the listeners, and reports the addresses it actually got (port
0 means "any free port").
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import json
import logging
import resource
import ssl
import weakref
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import dns.asyncresolver
import dns.exception
import dns.resolver

from fake_dns import DnsFault, DnsServer, DomainSpec, MxHost, QueryLog, build_zones
from fake_dns.resolver import make_resolver
from fake_dns.zone import ExtraRecord
from sandbox.auth.keys import DomainKeys, KeyRing
from sandbox.auth.records import auth_records, publishes_own_spf
from sandbox.auth.service import Authenticity, auth_dns_fault
from sandbox.chaos import ChaosBoard, DomainChaos
from sandbox.config import Config
from sandbox.datafile import prepare_data_file
from sandbox.domain_config import DomainConfig
from sandbox.endpoints import remove_endpoints, write_endpoints
from sandbox.events import DnsQueried, Event, EventBus
from sandbox.http import HttpListener, start_http
from sandbox.imap import ImapBackend, ImapListener, ImapSettings, start_imap_server
from sandbox.net import (
    AcceptedConnections,
    ConnectionBudget,
    listen,
    listen_problem,
    server_address,
    stop_listener,
)
from sandbox.pop3 import Pop3Server, Pop3Settings, StorePop3Backend, start_pop3_server
from sandbox.relay import Relay
from sandbox.smtp.handlers import Authenticator, BaseHandler, MxHandler, SubmissionHandler
from sandbox.smtp.protocol import SandboxSMTP
from sandbox.store import SqliteStore
from sandbox.tls import SandboxTLS

log = logging.getLogger(__name__)

Address = tuple[str, int]
CHAOS_POLL_SECONDS = 0.5
# Linux has the whole 127.0.0.0/8 on loopback; macOS and some containers only 127.0.0.1.
_ADDRESS_MISSING = {errno.EADDRNOTAVAIL}


class StartupError(RuntimeError):
    """A listener could not start; the message says which and what to do."""


@dataclass(frozen=True)
class Endpoints:
    smtp: Address
    dns: Address
    mx: dict[str, Address]
    data: str
    extra: dict[str, Any] = field(default_factory=dict)

    def ready(self) -> dict[str, Any]:
        """The ready line of DESIGN.md; later listeners join through ``extra``."""
        return {
            "event": "ready",
            "smtp": list(self.smtp),
            **{k: list(v) if isinstance(v, tuple) else v for k, v in self.extra.items()},
            "dns": list(self.dns),
            "mx": {domain: list(addr) for domain, addr in self.mx.items()},
            "data": self.data,
        }

    def ready_line(self) -> str:
        return json.dumps(self.ready())

    @property
    def http(self) -> Address | None:
        """The HTTP API's address (Mailpit's REST API v1, events, the webmail)."""
        value = self.extra.get("http")
        return (str(value[0]), int(value[1])) if value else None


class RuntimeState(StrEnum):
    """A runtime's life, which runs once: new → starting → running → stopping → stopped."""

    NEW = "new"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


class Runtime:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.state = RuntimeState.NEW
        self.bus = EventBus()
        self._store: SqliteStore | None = None
        self._servers: list[asyncio.Server] = []
        self._mx_servers: list[asyncio.Server] = []  # in _servers too; close after the relay
        self._dns: DnsServer | None = None
        self._relay: Relay | None = None
        self._resolver: dns.asyncresolver.Resolver | None = None
        self._pop3_servers: list[Pop3Server] = []
        # Python 3.11's Server.close() leaves accepted connections open; stop() ends them.
        self._smtp_sessions: weakref.WeakSet[SandboxSMTP] = weakref.WeakSet()
        self._smtp_accepted = AcceptedConnections()
        self._imap_listeners: list[ImapListener] = []
        self._imap_backend: ImapBackend | None = None
        self.tls: SandboxTLS | None = None
        self.keys: KeyRing | None = None
        self.auth: Authenticity | None = None
        self.chaos = ChaosBoard()
        self._chaos_task: asyncio.Task[None] | None = None
        self._prune_task: asyncio.Task[None] | None = None
        self._http: HttpListener | None = None
        self.endpoints: Endpoints | None = None
        self._recorded: dict[str, Any] | None = None  # what the endpoints file holds

    @property
    def running(self) -> bool:
        return self.state is RuntimeState.RUNNING

    def _not_running(self) -> RuntimeError:
        if self.state is RuntimeState.STOPPED:
            return RuntimeError(
                "the sandbox is not running: this Runtime was stopped; a Runtime runs once,"
                " make a new Runtime(config) to start again"
            )
        return RuntimeError(f"the sandbox is not running ({self.state}): await start() first")

    @property
    def store(self) -> SqliteStore:
        if self._store is None:
            raise self._not_running()
        return self._store

    async def start(self) -> Endpoints:
        if self.state is not RuntimeState.NEW:
            raise RuntimeError(
                f"this Runtime is {self.state}: a Runtime starts once;"
                " make a new Runtime(config) to start again"
            )
        self.state = RuntimeState.STARTING
        config = self.config
        extra: dict[str, Any] = {}
        try:
            check_exposure(config)
            raise_file_limit()
            prepare_data_file(config.data)
            # The store announces on this bus, and brings other processes' changes to it.
            self._store = await SqliteStore.open(config.data, bus=self.bus)
            self.bus.listen(self._journal)
            self.tls = await asyncio.to_thread(
                SandboxTLS.for_data, config.data, certificate_names(config)
            )
            server_tls = self.tls.server_context()
            self.keys = await asyncio.to_thread(
                KeyRing.for_data,
                config.data,
                [d.name for d in config.domains],
                config.dkim.key_dir,
            )
            self.auth = Authenticity(
                config,
                self.keys,
                lambda: self.dns_server.address,
                self.chaos,
                timeout=config.dns.auth_timeout,
            )
            submission = SubmissionHandler(
                config, self.store, self.bus, config.smtp.hostname, self.reverse_lookup
            )
            submission.auth = self.auth
            smtp_addr = await self._listen_smtp(
                submission, config.host, config.smtp.port, "--smtp-port", starttls=server_tls
            )
            extra["smtps"] = await self._listen_smtp(
                submission, config.host, config.smtps.port, "--smtps-port", implicit=server_tls
            )
            mx: dict[str, Address] = {}
            for index, domain in enumerate(config.domains):
                handler = MxHandler(
                    config,
                    self.store,
                    self.bus,
                    domain.mx_host,
                    domain.name,
                    self.reverse_lookup,
                    self.chaos,
                )
                handler.auth = self.auth
                mx[domain.name] = await self._listen_mx(handler, domain.mx_address, index)
            dns_addr = await self._start_dns(mx)
            self._relay = Relay(
                config,
                self.store,
                self.bus,
                self.resolver,
                {domain: address for domain, (address, _) in mx.items()},
                self.tls.client_context(),
            )
            self._relay.source_for = self.auth.relay_source
            await self._relay.start()
            extra.update(await self._start_mailbox_servers(server_tls))
            extra["http"] = await self._start_http()
            await self._load_chaos()
            retention = config.retention
            if retention.max_messages or retention.max_age or retention.max_events:
                self._prune_task = asyncio.get_running_loop().create_task(self._prune())
        except BaseException:
            await self.stop()
            raise
        self.endpoints = Endpoints(
            smtp=smtp_addr, dns=dns_addr, mx=mx, data=config.data, extra=extra
        )
        self._recorded = self.endpoints.ready()
        write_endpoints(config.data, self._recorded)  # so commands on this data file find us
        self.state = RuntimeState.RUNNING
        return self.endpoints

    async def _start_mailbox_servers(self, server_tls: ssl.SSLContext) -> dict[str, Address]:
        """POP3 and IMAP, each plain (offering STLS/STARTTLS) and with implicit TLS."""
        config = self.config
        pop3_settings = Pop3Settings(
            idle_timeout=config.pop3.idle_timeout,
            max_line=config.pop3.max_line_length,
            max_bad_commands=config.pop3.max_bad_commands,
            max_connections=config.pop3.max_connections,
            require_tls_for_auth=config.tls.require_before_auth,
            # Without accounts `all` opens with any password, as every login does.
            all_login_off=bool(config.accounts) and not config.logins.allow_all,
            all_password=(
                config.logins.all_password if config.accounts and config.logins.allow_all else None
            ),
        )
        pop3_backend = StorePop3Backend(self.store, config)
        self._imap_backend = ImapBackend(self.store, self.bus)
        imap_settings = ImapSettings.from_config(
            config, require_tls_for_auth=config.tls.require_before_auth
        )
        addresses: dict[str, Address] = {}
        for name, port, flag, tls in (
            ("pop3", config.pop3.port, "--pop3-port", None),
            ("pop3s", config.pop3s.port, "--pop3s-port", server_tls),
            ("imap", config.imap.port, "--imap-port", None),
            ("imaps", config.imaps.port, "--imaps-port", server_tls),
        ):
            try:
                if name.startswith("pop3"):
                    pop3 = await start_pop3_server(
                        pop3_backend,
                        host=config.host,
                        port=port,
                        hostname="pop3.localhost",
                        ssl_context=tls,
                        starttls_context=None if tls else server_tls,
                        settings=pop3_settings,
                        bus=self.bus,
                    )
                    self._pop3_servers.append(pop3)
                    addresses[name] = pop3.address
                else:
                    imap = await start_imap_server(
                        self._imap_backend,
                        self.bus,
                        imap_settings,
                        host=config.host,
                        port=port,
                        ssl_context=tls,
                        starttls_context=None if tls else server_tls,
                    )
                    self._imap_listeners.append(imap)
                    addresses[name] = imap.address
            except OSError as exc:
                raise StartupError(listen_problem(config.host, port, exc, flag)) from exc
        return addresses

    async def _start_http(self) -> Address:
        try:
            self._http = await start_http(self, self.config.host, self.config.http.port)
        except OSError as exc:
            raise StartupError(
                listen_problem(self.config.host, self.config.http.port, exc, "--http-port")
            ) from exc
        return self._http.address

    @property
    def dns_server(self) -> DnsServer:
        if self._dns is None:
            raise self._not_running()
        return self._dns

    @property
    def relay(self) -> Relay:
        if self._relay is None:
            raise self._not_running()
        return self._relay

    def resolver(self) -> dns.asyncresolver.Resolver:
        """The sandbox's resolver: asks the stub and nothing else, and caches by TTL.

        Caching is what a real MTA's resolver does, and it halves the relay's work; the
        cache is emptied whenever chaos changes a domain, so a DNS fault shows at once.
        """
        if self._resolver is None:
            host, port = self.dns_server.address
            self._resolver = make_resolver(host, port)
            self._resolver.cache = dns.resolver.Cache()
        return self._resolver

    async def reverse_lookup(self, address: str) -> str | None:
        """The PTR name the stub gives an address (for Received: headers)."""
        if self._dns is None:
            return None
        try:
            answer = await self.resolver().resolve_address(address, lifetime=1.0)
        except (dns.exception.DNSException, ValueError):
            return None
        return str(answer[0].target.to_text(omit_final_dot=True)) if answer.rrset else None

    async def _start_dns(self, mx: dict[str, Address]) -> Address:
        """The zones publish where each MX server really listens (SRV when off port 2525)."""
        keys = self.keys.get if self.keys is not None else (lambda name: None)
        specs = [domain_spec(d, mx[d.name], keys(d.name)) for d in self.config.domains]
        specs += [  # held mail's senders: the records pasted in, nothing generated
            DomainSpec(
                r.name,
                self.config.host,
                extra=tuple(ExtraRecord(x.name, x.type, x.value, x.ttl) for x in r.records),
                records_only=True,
            )
            for r in self.config.real_domains
        ]
        try:
            zones = build_zones(
                specs,
                common_mx_port=self.config.mx.port,
                ptr={"127.0.0.1": "localhost"},
                ns_address=_published_address(self.config.host),
            )
        except ValueError as exc:
            raise StartupError(f"bad DNS settings in the domains' configuration: {exc}") from exc
        dns = self.config.dns
        self._dns = DnsServer(
            zones,
            on_query=self._dns_queried,
            max_tcp_message=dns.max_tcp_message,
            tcp_idle_timeout=dns.tcp_idle_timeout,
            max_tcp_connections=dns.max_tcp_connections,
        )
        try:
            return await self._dns.start(self.config.host, self.config.dns.port)
        except OSError as exc:
            raise StartupError(
                listen_problem(self.config.host, self.config.dns.port, exc, "--dns-port")
            ) from exc

    # --- chaos ------------------------------------------------------------------------

    async def set_chaos(self, domain: str, chaos: DomainChaos) -> None:
        """Switch a domain's faults now (and for other processes, through the store)."""
        if not self.config.is_fake_domain(domain):
            raise ValueError(f"{domain} is not one of this sandbox's domains")
        await self.store.set_chaos(domain, chaos.to_json() if chaos.active else None)
        self._apply_chaos(domain, chaos)

    async def _load_chaos(self) -> None:
        """Start from the configuration's faults, then follow `mail-sandbox chaos`."""
        for domain in self.config.domains:
            dns = domain.dns_fault if (domain.dns_fault.mode or domain.dns_fault.delay_ms) else None
            await self.set_chaos(domain.name, DomainChaos(domain.chaos, dns))
        self._chaos_task = asyncio.get_running_loop().create_task(self._follow_chaos())

    async def _follow_chaos(self) -> None:
        known = await self.store.chaos()
        while True:
            await asyncio.sleep(CHAOS_POLL_SECONDS)
            try:
                current = await self.store.chaos()
            except Exception:  # store busy; look again next time
                log.exception("could not read chaos settings")
                continue
            for domain in set(known) | set(current):
                if known.get(domain) != current.get(domain) and self.config.is_fake_domain(domain):
                    chaos = (
                        DomainChaos.from_json(current[domain])
                        if domain in current
                        else DomainChaos()
                    )
                    self._apply_chaos(domain, chaos)
            known = current

    def _apply_chaos(self, domain: str, chaos: DomainChaos) -> None:
        self.chaos.set(domain, chaos)
        if self._resolver is not None and self._resolver.cache is not None:
            self._resolver.cache.flush()
        if self._relay is not None:
            self._relay.forget_connections()
        if self.auth is not None:
            self.auth.forget_dns()
        if self._dns is not None:
            # A DNS fault of its own wins over the one an authentication fault needs.
            auth_fault = auth_dns_fault(chaos.auth)
            if chaos.dns is not None:
                self._dns.set_fault(
                    domain,
                    DnsFault(chaos.dns.mode, chaos.dns.delay_ms),  # type: ignore[arg-type]
                )
            elif auth_fault is not None:
                self._dns.set_fault(domain, auth_fault)
            else:
                self._dns.clear_fault(domain)

    async def _prune(self) -> None:
        """Retention: keep the store bounded (off unless configured)."""
        retention = self.config.retention
        while True:
            await asyncio.sleep(retention.interval)
            await self.prune_now()

    async def prune_now(self) -> None:
        """One retention pass: old messages (announced as ``MessagesPruned``), the journal."""
        retention = self.config.retention
        if retention.max_messages or retention.max_age:
            try:
                await self.store.prune(
                    max_messages=retention.max_messages,
                    max_age=retention.max_age,
                    grace=retention.grace,
                )
            except Exception:  # the store is busy or closing; try next time
                log.exception("retention: could not prune")
        if retention.max_events:
            try:
                await self.store.trim_journal(retention.max_events)
            except Exception:  # the same: next time
                log.exception("retention: could not trim the events journal")

    def _dns_queried(self, log: QueryLog) -> None:
        self.bus.publish(
            DnsQueried(
                client=log.client,
                transport=log.transport,
                qname=log.qname,
                qtype=log.qtype,
                rcode=log.rcode,
                answer=log.answer,
                micros=log.micros,
                fault=log.fault,
            )
        )

    async def stop(self) -> None:
        """Stop every listener and close the store; stopping twice is harmless."""
        if self.state in (RuntimeState.STOPPING, RuntimeState.STOPPED):
            return
        self.state = RuntimeState.STOPPING
        self.endpoints = None
        try:
            await self._stop_parts()
        finally:
            self.state = RuntimeState.STOPPED

    async def _stop_parts(self) -> None:
        if self._recorded is not None:
            remove_endpoints(self.config.data, self._recorded)
            self._recorded = None
        if self._http is not None:  # its requests use the store: it goes first
            await self._http.stop()
            self._http = None
        for server in self._servers:  # no new mail while the rest winds down
            if server not in self._mx_servers:
                server.close()
        for imap in self._imap_listeners:
            imap.close()
        for task in (self._chaos_task, self._prune_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._chaos_task = self._prune_task = None
        # Mailbox sessions end before the store closes: ending one writes its journey hops.
        for pop3 in self._pop3_servers:
            await pop3.close()
        self._pop3_servers.clear()
        for imap in self._imap_listeners:
            await imap.wait_closed()
        self._imap_listeners.clear()
        if self._imap_backend is not None:
            self._imap_backend.close()
            self._imap_backend = None
        if self._relay is not None:
            await self._relay.stop()
            self._relay = None
        # Python 3.11 leaks the socket of a connection accepted in the same loop turn as
        # Server.close() (its transport asserts the server is open, and nobody closes the
        # socket). The MX servers' clients are the relay's workers: with them stopped,
        # let accepts in flight finish, then close.
        for _ in range(2):
            await asyncio.sleep(0)
        for server in self._mx_servers:
            server.close()
        if self._dns is not None:
            await self._dns.stop()
            self._dns = None
        await self._hang_up_smtp()
        for server in self._servers:
            await stop_listener(server)
        self._servers.clear()
        self._mx_servers.clear()
        if self._store is not None:
            await self._store.close()
            self._store = None
        if self.tls is not None:
            self.tls.close()
            self.tls = None
        if self.keys is not None:
            self.keys.close()
            self.keys = None
        for _ in range(3):  # connections accepted during shutdown end before the loop does
            await asyncio.sleep(0)

    async def _hang_up_smtp(self) -> None:
        """End every SMTP connection, including any accepted just before the listeners
        closed whose protocol is not connected yet, so no socket outlives the loop."""
        for _ in range(2):
            for session in list(self._smtp_sessions):
                session.hang_up()
            self._smtp_accepted.abort_all()  # sockets their sessions no longer hold
            for _ in range(3):  # let accepts finish and aborted connections end
                await asyncio.sleep(0)

    async def __aenter__(self) -> Runtime:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- listeners ------------------------------------------------------------------

    def _smtp_factory(
        self, handler: BaseHandler, starttls: ssl.SSLContext | None, implicit: bool
    ) -> Any:
        config = self.config
        loop = asyncio.get_running_loop()
        authenticator = Authenticator(config)
        budget = ConnectionBudget(config.smtp.max_connections)

        def make() -> SandboxSMTP:
            protocol = SandboxSMTP(
                handler,
                bus=self.bus,
                server_name=handler.server_name,
                line_length_limit=config.smtp.max_line_length,
                budget=budget,
                accepted=self._smtp_accepted,
                max_bad_commands=config.smtp.max_bad_commands,
                strict=config.smtp.strict,
                hostname=handler.hostname,
                ident="ESMTP mail-sandbox",
                data_size_limit=config.smtp.max_message_size,
                enable_SMTPUTF8=True,
                decode_data=False,
                tls_context=starttls,
                # aiosmtpd only knows STARTTLS; on an implicit-TLS port it is TLS already.
                auth_require_tls=config.tls.require_before_auth and not implicit,
                authenticator=authenticator,
                timeout=config.smtp.idle_timeout,
                loop=loop,
            )
            self._smtp_sessions.add(protocol)
            if self.state is not RuntimeState.RUNNING:
                # Accepted as the listeners closed: dropped the moment it connects.
                protocol.hang_up()
            return protocol

        return make

    async def _listen_smtp(
        self,
        handler: BaseHandler,
        host: str,
        port: int,
        flag: str,
        *,
        starttls: ssl.SSLContext | None = None,
        implicit: ssl.SSLContext | None = None,
    ) -> Address:
        try:
            server = await listen(
                self._smtp_factory(handler, starttls, implicit is not None),
                host,
                port,
                ssl_context=implicit,
                max_connections=self.config.smtp.max_connections,
            )
        except OSError as exc:
            raise StartupError(listen_problem(host, port, exc, flag)) from exc
        self._servers.append(server)
        return server_address(server)

    async def _listen_mx(self, handler: MxHandler, address: str, index: int) -> Address:
        """On the domain's own loopback address, or on 127.0.0.1 with a port of its own."""
        port = self.config.mx.port
        tls = self.tls.server_context() if self.tls is not None else None
        try:
            listening = await self._listen_smtp(handler, address, port, "--mx-port", starttls=tls)
            self._mx_servers.append(self._servers[-1])
            return listening
        except StartupError as exc:
            cause = exc.__cause__
            if not (isinstance(cause, OSError) and cause.errno in _ADDRESS_MISSING):
                raise
        fallback_port = port + index if port else 0
        log.warning("%s is not on this machine; MX of %s on 127.0.0.1", address, handler.domain)
        listening = await self._listen_smtp(
            handler, "127.0.0.1", fallback_port, "--mx-port", starttls=tls
        )
        self._mx_servers.append(self._servers[-1])
        return listening

    def _journal(self, event: Event) -> None:
        # What another process did is in its own journal already.
        if self._store is not None and not event.remote:
            self._store.journal(event.kind, event.as_dict(), event.at)


def domain_spec(
    domain: DomainConfig, mx_server: Address, keys: DomainKeys | None = None
) -> DomainSpec:
    """What the stub publishes for a domain whose MX server listens at ``mx_server``,
    with its DKIM keys and DMARC policy (``sandbox.auth.records``)."""
    address, port = mx_server
    mx: tuple[MxHost, ...] | None = None
    if domain.mx is not None:
        mx = tuple(
            MxHost(
                record.host,
                record.preference,
                record.addresses or ((address,) if _inside(record.host, domain.name) else ()),
            )
            for record in domain.mx
        )
    fault = domain.dns_fault
    own = tuple(ExtraRecord(r.name, r.type, r.value, r.ttl) for r in domain.records)
    return DomainSpec(
        name=domain.name,
        address=address,
        mx_port=port,
        mx=mx,
        null_mx=domain.null_mx,
        aaaa=domain.aaaa,
        extra=(*auth_records(domain.name, domain.auth, keys, own), *own),
        fault=DnsFault(fault.mode, fault.delay_ms),  # type: ignore[arg-type]
        spf=not publishes_own_spf(domain.name, own),
        spf_terms=domain.auth.spf_extra,
    )


def _published_address(host: str) -> str:
    """The address the zones give the stub's own NS host: where it listens, or loopback
    when it listens on every address (0.0.0.0 in a record reaches nobody)."""
    return "127.0.0.1" if ipaddress.ip_address(host).is_unspecified else host


def _inside(host: str, domain: str) -> bool:
    host = host.rstrip(".").lower()
    return host == domain or host.endswith("." + domain)


def certificate_names(config: Config) -> list[str]:
    """Every name and address a client may reach a sandbox server by."""
    names = [config.smtp.hostname, "pop3.localhost", "imap.localhost", config.host]
    for domain in config.domains:
        names += [domain.name, domain.mx_host, domain.mx_address]
        names += [record.host for record in domain.mx or ()]
    return names


def check_exposure(config: Config) -> None:
    """Loopback only by default: beyond it, anyone who reaches the port reads the mail.

    The rule holds for every listener: ``--host`` and each domain's MX ``mx_address``.
    """
    for address, what in listen_addresses(config):
        if ipaddress.ip_address(address).is_loopback:
            continue
        if not config.accounts and not config.allow_open:
            raise StartupError(
                f"refusing to listen on {address} without accounts ({what}): anyone who can"
                " reach this machine could read and send mail through the sandbox; use a"
                " loopback address, add [accounts] to the configuration, or pass"
                " --allow-open if that is really what you want"
            )
        log.warning(
            "listening on %s (%s): the sandbox is reachable from the network,"
            " not only this machine",
            address,
            what,
        )


def listen_addresses(config: Config) -> list[tuple[str, str]]:
    """Every address a listener binds, with what it is (for the exposure check)."""
    found = [(config.host, "--host")]
    for domain in config.domains:
        found.append(
            (
                domain.mx_address,
                f'the MX server of {domain.name}, domains."{domain.name}".mx_address',
            )
        )
    return found


def raise_file_limit() -> None:
    """A thousand connections need more descriptors than the common soft limit of 1024."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
        if soft != resource.RLIM_INFINITY and soft < wanted:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    except (ValueError, OSError):  # not allowed here: the configured limits still apply
        log.warning("could not raise the open-file limit; many connections may fail")
