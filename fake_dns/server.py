"""The stub's asyncio servers: UDP and TCP on one port, answering from prebuilt ``Zones``.

Theory of operation: every message, from either transport, goes through ``_respond``,
which returns the wire reply (or nothing) plus what to log. ``_respond`` is also the one
place where failures become DNS codes: too short for a header → drop, unparseable →
FORMERR, a crash of ours → SERVFAIL. The transports only frame bytes and schedule delayed
replies; they never let an exception out of a protocol callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, cast

import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype

from fake_dns.faults import DnsFault
from fake_dns.zone import Answer, Zones

logger = logging.getLogger(__name__)

Transport = Literal["udp", "tcp"]

#: RFC 1035 §4.1.1: the fixed header is 12 bytes; anything shorter is not DNS.
HEADER_SIZE = 12
#: RFC 1035 §4.2.1: the UDP limit without EDNS.
CLASSIC_UDP_SIZE = 512
#: The EDNS UDP payload we advertise and cap replies at (RFC 6891 §6.2.5: the lesser of
#: the requestor's and ours).
OUR_UDP_PAYLOAD = 4096
#: Rendered replies kept for repeated identical queries (see ``_respond``).
CACHE_ENTRIES = 4096
#: Longest query, and reply, that the cache keeps (bounds its memory to ~20 MB).
CACHE_MAX_QUERY = 512
CACHE_MAX_REPLY = 4096
#: rcode text logged when a fault swallows the answer.
NO_ANSWER = "TIMEOUT"

_QR = int(dns.flags.QR)
_AA = int(dns.flags.AA)
_RD = int(dns.flags.RD)
_DO = int(dns.flags.DO)
_REFUSED_TYPES = frozenset({dns.rdatatype.AXFR, dns.rdatatype.IXFR})


@dataclass(frozen=True)
class QueryLog:
    """One query as the stub saw it, for an event bus or a log line.

    ``client`` is "ip:port" ("[ip]:port" for IPv6). ``qname`` is as sent (case kept,
    trailing dot), empty when the question was unreadable. ``rcode`` is the rcode text, or
    "TIMEOUT" when a fault sent no answer. ``answer`` is a short summary of the answer
    section. ``micros`` is the time spent building the reply (not an injected delay).
    ``fault`` describes the fault applied ("servfail", "delay 200ms"), ``None`` if none.
    """

    client: str
    transport: Transport
    query_id: int
    qname: str
    qtype: str
    rcode: str
    answer: str
    micros: int
    fault: str | None = None


@dataclass(frozen=True, slots=True)
class _Reply:
    """The outcome of one message: bytes to send (``None``: none) and what to log.

    Replies are shared between identical queries (see ``_respond``), so the ID in ``wire``
    is whichever query came first: ``for_query`` puts the asker's ID in.
    """

    wire: bytes | None
    qname: str = ""
    qtype: str = ""
    rcode: str = ""
    summary: str = ""
    fault: str | None = None
    delay: float = 0.0
    zone: str | None = None

    def for_query(self, data: bytes) -> bytes | None:
        """The reply bytes carrying the ID of ``data`` (RFC 1035 §4.1.1: ID copied)."""
        return None if self.wire is None else data[:2] + self.wire[2:]


def _format_client(addr: Any) -> str:
    try:
        host, port = addr[0], addr[1]
    except (TypeError, IndexError):
        return str(addr)
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def _header_only(query_id: int, flags: int, rcode: dns.rcode.Rcode) -> bytes:
    """A reply with no sections, for queries we could not (or will not) parse.

    Echoes the ID, opcode and RD (RFC 1035 §4.1.1); counts are zero.
    """
    reply_flags = _QR | (flags & 0x7800) | (flags & _RD) | (int(rcode) & 0xF)
    return (
        query_id.to_bytes(2, "big")
        + reply_flags.to_bytes(2, "big")
        + bytes(8)  # QDCOUNT, ANCOUNT, NSCOUNT, ARCOUNT
    )


class DnsServer:
    """An authoritative-only DNS server for ``Zones`` over UDP and TCP on one port.

    ``on_query`` receives one ``QueryLog`` per query answered (or swallowed by a fault);
    its exceptions are logged and otherwise ignored. ``max_tcp_message`` bounds both a TCP
    query (longer ones close the connection) and a TCP reply (longer ones are truncated
    with TC). ``tcp_idle_timeout`` closes silent TCP connections (RFC 7766 §6.2.3).
    ``max_tcp_connections`` bounds concurrent TCP connections; extra ones are closed.
    """

    def __init__(
        self,
        zones: Zones,
        *,
        on_query: Callable[[QueryLog], None] | None = None,
        max_tcp_message: int = 65535,
        tcp_idle_timeout: float = 10.0,
        max_tcp_connections: int = 256,
    ) -> None:
        if not HEADER_SIZE <= max_tcp_message <= 65535:
            raise ValueError(f"max_tcp_message must be in 12..65535, got {max_tcp_message}")
        self.zones = zones
        self.on_query = on_query
        self.max_tcp_message = max_tcp_message
        self.tcp_idle_timeout = tcp_idle_timeout
        self.max_tcp_connections = max_tcp_connections
        self._faults: dict[str, DnsFault] = dict(zones.faults)
        self._zone_names = frozenset(zones.zone_names)
        self._cache: dict[tuple[bool, bytes], _Reply] = {}
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._tcp_tasks: set[asyncio.Task[None]] = set()
        self._timers: set[asyncio.TimerHandle] = set()
        self._address: tuple[str, int] | None = None
        self._on_query_failed = False

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) the server listens on; raises ``RuntimeError`` before ``start``."""
        if self._address is None:
            raise RuntimeError("DnsServer is not started")
        return self._address

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Listen on UDP and TCP, same port; port 0 picks one free for both.

        ``host`` must be an IP literal: binding never resolves a name.
        """
        if self._address is not None:
            raise RuntimeError("DnsServer is already started")
        ipaddress.ip_address(host)  # ValueError for names: no lookup, ever
        loop = asyncio.get_running_loop()
        attempts = 20 if port == 0 else 1
        for attempt in range(attempts):
            udp, _ = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self), local_addr=(host, port)
            )
            bound = int(udp.get_extra_info("sockname")[1])
            try:
                self._tcp = await asyncio.start_server(
                    self._serve_tcp, host, bound, limit=self.max_tcp_message + 2
                )
            except OSError:
                # Port 0: the UDP port we got may be taken on TCP; try another one.
                udp.close()
                if attempt == attempts - 1:
                    raise
                continue
            self._udp = udp
            self._address = (host, bound)
            return self._address
        raise AssertionError("unreachable")  # pragma: no cover

    async def stop(self) -> None:
        """Stop listening, drop pending delayed replies and close TCP connections."""
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        tasks = list(self._tcp_tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._tcp is not None:
            await self._tcp.wait_closed()
            self._tcp = None
        self._address = None

    # -- faults --------------------------------------------------------------------------

    @property
    def faults(self) -> dict[str, DnsFault]:
        """Active faults by domain (a copy)."""
        return dict(self._faults)

    def set_fault(self, domain: str, fault: DnsFault) -> None:
        """Make one served domain misbehave from the next query on."""
        name = self._zone_name(domain)
        if fault.active:
            self._faults[name] = fault
        else:
            self._faults.pop(name, None)
        self._cache.clear()

    def clear_fault(self, domain: str) -> None:
        """Back to normal answers for one domain."""
        self._faults.pop(self._zone_name(domain), None)
        self._cache.clear()

    def _zone_name(self, domain: str) -> str:
        name = domain.lower().rstrip(".")
        if name not in self._zone_names:
            raise KeyError(f"not a served zone: {domain!r}")
        return name

    # -- the one place bytes become a reply ----------------------------------------------

    def _respond(self, data: bytes, tcp: bool) -> _Reply | None:
        """Turn one received message into a reply; ``None`` means drop it silently."""
        if len(data) < HEADER_SIZE:
            return None  # not even a header (RFC 1035 §4.1.1): nothing to answer to
        query_id = int.from_bytes(data[:2], "big")
        flags = int.from_bytes(data[2:4], "big")
        if flags & _QR:
            return None  # a response sent to us: answering could loop between servers
        opcode = (flags >> 11) & 0xF
        # Profiled: parsing and rendering with dnspython is ~80% of a query's cost. The reply
        # depends only on the query bytes after the ID (and on transport, zones, faults: the
        # zones never change, set_fault clears the cache, faulty replies are not cached), so
        # an identical query gets the same rendered reply with its own ID patched in.
        cached = self._cache.get((tcp, data[2:]))
        if cached is not None:
            return cached
        if opcode != dns.opcode.QUERY:
            return _Reply(_header_only(query_id, flags, dns.rcode.NOTIMP), rcode="NOTIMP")
        try:
            query = dns.message.from_wire(data)
        except Exception:  # any parse failure of a readable header is the peer's fault
            return _Reply(_header_only(query_id, flags, dns.rcode.FORMERR), rcode="FORMERR")
        try:
            reply = self._answer(query, tcp)
        except Exception:
            logger.exception("fake_dns: failed answering query id %d", query_id)
            return _Reply(_header_only(query_id, flags, dns.rcode.SERVFAIL), rcode="SERVFAIL")
        if (
            reply.fault is None
            and reply.wire is not None
            and len(data) <= CACHE_MAX_QUERY
            and len(reply.wire) <= CACHE_MAX_REPLY
        ):
            if len(self._cache) >= CACHE_ENTRIES:
                self._cache.clear()
            self._cache[tcp, data[2:]] = reply
        return reply

    def _answer(self, query: dns.message.Message, tcp: bool) -> _Reply:
        response = dns.message.make_response(query, our_payload=OUR_UDP_PAYLOAD)
        if query.edns >= 0 and query.ednsflags & _DO:
            # RFC 3225 §3: the DO bit of the query MUST be copied into the reply. There are
            # no signatures to add: the fake zones are unsigned (RFC 4035 §3.1.6: insecure).
            response.ednsflags |= _DO
        if len(query.question) != 1:
            # RFC 9619: QDCOUNT is 1 for QUERY; anything else is malformed.
            response.set_rcode(dns.rcode.FORMERR)
            return self._render(response, query, tcp, rcode=dns.rcode.FORMERR)
        question = query.question[0]
        qname, qtype = question.name.to_text(), dns.rdatatype.to_text(question.rdtype)
        if query.edns > 0:
            # RFC 6891 §6.1.3: we speak EDNS version 0 only.
            response.set_rcode(dns.rcode.BADVERS)
            return self._render(response, query, tcp, dns.rcode.BADVERS, qname, qtype)
        if question.rdclass != dns.rdataclass.IN or question.rdtype in _REFUSED_TYPES:
            # Only class IN is served; zone transfers are not offered.
            response.set_rcode(dns.rcode.REFUSED)
            return self._render(response, query, tcp, dns.rcode.REFUSED, qname, qtype)

        answer = self.zones.lookup(question.name, question.rdtype)
        fault = self._faults.get(answer.zone) if answer.zone is not None else None
        if fault is not None and not fault.applies(qname, qtype):
            fault = None
        fault_text: str | None = None
        delay = 0.0
        if fault is not None:
            fault_text = fault.describe()
            delay = fault.delay_ms / 1000
            if fault.mode == "timeout":
                return _Reply(None, qname, qtype, NO_ANSWER, "", fault_text)
            if fault.mode == "servfail":
                answer = Answer(dns.rcode.SERVFAIL, zone=answer.zone)
            elif fault.mode == "nxdomain" and answer.zone is not None:
                answer = self.zones.nxdomain(answer.zone)
        if answer.zone is not None:
            response.flags |= _AA  # RFC 1035 §4.1.1: we are the authority for these zones
        response.set_rcode(answer.rcode)
        response.answer = list(answer.answer)
        response.authority = list(answer.authority)
        return self._render(
            response,
            query,
            tcp,
            answer.rcode,
            qname,
            qtype,
            answer.summary,
            fault_text,
            delay,
            answer.zone,
        )

    def _render(
        self,
        response: dns.message.Message,
        query: dns.message.Message,
        tcp: bool,
        rcode: dns.rcode.Rcode,
        qname: str = "",
        qtype: str = "",
        summary: str = "",
        fault: str | None = None,
        delay: float = 0.0,
        zone: str | None = None,
    ) -> _Reply:
        if tcp:
            max_size = self.max_tcp_message
        elif query.edns >= 0:
            # RFC 6891 §6.2.5: the requestor's payload, at least 512, at most ours.
            max_size = min(max(query.payload, CLASSIC_UDP_SIZE), OUR_UDP_PAYLOAD)
        else:
            max_size = CLASSIC_UDP_SIZE
        # RFC 2181 §9: what does not fit is left out whole, with TC set, and the client
        # retries over TCP (RFC 7766 §5).
        wire = response.to_wire(max_size=max_size, prefer_truncation=True)
        return _Reply(wire, qname, qtype, dns.rcode.to_text(rcode), summary, fault, delay, zone)

    # -- transports ----------------------------------------------------------------------

    def _process(self, data: bytes, transport: Transport, addr: Any) -> _Reply | None:
        """Respond, then report the query to ``on_query``; never raises."""
        started = time.perf_counter_ns()
        reply = self._respond(data, transport == "tcp")
        if reply is not None and self.on_query is not None:
            micros = (time.perf_counter_ns() - started) // 1000
            try:
                self.on_query(
                    QueryLog(
                        _format_client(addr),
                        transport,
                        int.from_bytes(data[:2], "big"),
                        reply.qname,
                        reply.qtype,
                        reply.rcode,
                        reply.summary,
                        micros,
                        reply.fault,
                    )
                )
            except Exception:
                if not self._on_query_failed:  # once, not once per query
                    self._on_query_failed = True
                    logger.exception("fake_dns: on_query callback failed")
        return reply

    def _send_later(self, delay: float, send: Callable[[bytes], None], wire: bytes) -> None:
        """Schedule a delayed reply on the loop (a fault's delay never blocks answering)."""
        loop = asyncio.get_running_loop()
        holder: list[asyncio.TimerHandle] = []

        def fire() -> None:
            self._timers.discard(holder[0])
            try:
                send(wire)
            except Exception:
                logger.debug("fake_dns: delayed reply not sent", exc_info=True)

        holder.append(loop.call_later(delay, fire))
        self._timers.add(holder[0])

    def _on_datagram(self, data: bytes, addr: Any, transport: asyncio.DatagramTransport) -> None:
        reply = self._process(data, "udp", addr)
        if reply is None or reply.wire is None:
            return
        wire = data[:2] + reply.wire[2:]
        if reply.delay > 0:
            self._send_later(reply.delay, lambda wire: transport.sendto(wire, addr), wire)
        else:
            transport.sendto(wire, addr)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One TCP connection: 2-byte length framing, many queries (RFC 1035 §4.2.2, RFC 7766).

        Replies go out as they are ready: immediate ones in order, delayed ones later.
        """
        task = asyncio.current_task()
        if task is None or len(self._tcp_tasks) >= self.max_tcp_connections:
            writer.close()
            return
        self._tcp_tasks.add(task)
        addr = writer.get_extra_info("peername")

        def send(wire: bytes) -> None:
            if not writer.is_closing():
                writer.write(len(wire).to_bytes(2, "big") + wire)

        try:
            while True:
                try:
                    async with asyncio.timeout(self.tcp_idle_timeout):
                        length = int.from_bytes(await reader.readexactly(2), "big")
                        if length > self.max_tcp_message:
                            break  # over our limit: close rather than read it
                        data = await reader.readexactly(length)
                except (TimeoutError, asyncio.IncompleteReadError):
                    break  # idle (RFC 7766 §6.2.3) or the client closed
                reply = self._process(data, "tcp", addr)
                wire = None if reply is None else reply.for_query(data)
                if reply is None or wire is None:
                    continue
                if reply.delay > 0:
                    self._send_later(reply.delay, send, wire)
                else:
                    send(wire)
                    await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._tcp_tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await writer.wait_closed()


class _UdpProtocol(asyncio.DatagramProtocol):
    """Feeds datagrams to the server; nothing raised here may stop the endpoint."""

    def __init__(self, server: DnsServer) -> None:
        self._server = server
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's UDP transport does not subclass DatagramTransport on 3.11.
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if self._transport is None:
            return
        try:
            self._server._on_datagram(data, addr, self._transport)
        except Exception:
            logger.exception("fake_dns: datagram handling failed")

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from a client that went away: nothing to do.
        logger.debug("fake_dns: UDP error %s", exc)
