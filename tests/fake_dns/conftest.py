"""Fixtures for the fake_dns tests: a standard set of zones and running servers."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import dns.asyncquery
import dns.message
import pytest

from fake_dns import DnsServer, DomainSpec, ExtraRecord, MxHost, QueryLog, Zones, build_zones
from tests.conftest import require_binary

COMMON_MX_PORT = 2525
BIG_TXT_COUNT = 24  # 24 TXT strings of 100 bytes: ~2.6 kB, beyond 512 and 1232 bytes


@pytest.fixture(name="require_binary")
def require_binary_fixture() -> Callable[[str], str]:
    return require_binary


def standard_domains() -> list[DomainSpec]:
    """One domain per MX shape, plus extra records for CNAME, TXT and SRV scenarios."""
    big_txt = tuple(
        ExtraRecord("big", "TXT", f"record-{index:02d}-" + "x" * 90)
        for index in range(BIG_TXT_COUNT)
    )
    return [
        DomainSpec(
            "alpha.test",
            "127.0.0.11",
            mx_port=COMMON_MX_PORT,
            aaaa=("fd00::11",),
            extra=(
                ExtraRecord("www", "CNAME", "@"),
                ExtraRecord("alias", "CNAME", "www"),
                ExtraRecord("outside", "CNAME", "example.com."),
                ExtraRecord("dangling", "CNAME", "missing.alpha.test."),
                ExtraRecord("cross", "CNAME", "mx.beta.test."),
                ExtraRecord("loop1", "CNAME", "loop2"),
                ExtraRecord("loop2", "CNAME", "loop1"),
                ExtraRecord("@", "MX", "20 mx2.alpha.test."),
                ExtraRecord("mx2", "A", "127.0.0.21"),
                ExtraRecord("_dmarc", "TXT", "v=DMARC1; p=none"),
                ExtraRecord("_imap._tcp", "SRV", "0 1 143 mx.alpha.test."),
                ExtraRecord("sub", "NS", "ns.alpha.test."),
                ExtraRecord("deep.er.names", "A", "127.0.0.31", ttl=30),
                *big_txt,
            ),
        ),
        DomainSpec("beta.test", "127.0.0.12", mx_port=2526),
        DomainSpec("gamma.test", "127.0.0.13", mx_port=COMMON_MX_PORT, mx=()),
        DomainSpec("delta.test", "127.0.0.14", mx_port=COMMON_MX_PORT, null_mx=True),
        DomainSpec(
            "epsilon.test",
            "127.0.0.15",
            mx_port=COMMON_MX_PORT,
            mx=(
                MxHost("mx-b.epsilon.test", 20, ("127.0.0.16", "fd00::16")),
                MxHost("MX-A.Epsilon.Test.", 10, ("127.0.0.15",)),
                MxHost("down.epsilon.test", 30, ("127.0.0.250",)),
                MxHost("noaddr.epsilon.test", 40, ()),
            ),
        ),
    ]


def standard_zones() -> Zones:
    return build_zones(
        standard_domains(),
        common_mx_port=COMMON_MX_PORT,
        ptr={"127.0.0.99": "host99.alpha.test", "fd00::99": "host99.alpha.test."},
    )


@pytest.fixture
def zones() -> Zones:
    return standard_zones()


class RunningServer:
    """A started server, its address, the queries it logged, and client helpers.

    The helpers live here because the test modules cannot import each other or conftest.
    """

    def __init__(self, server: DnsServer, host: str, port: int, logs: list[QueryLog]) -> None:
        self.server = server
        self.host = host
        self.port = port
        self.logs = logs

    async def query(
        self, name: str, rdtype: str, *, tcp: bool = False, wait: float = 2.0, **kw: Any
    ) -> dns.message.Message:
        """Ask one question with dnspython's own client."""
        return await self.send(dns.message.make_query(name, rdtype, **kw), tcp=tcp, wait=wait)

    async def send(
        self, message: dns.message.Message, *, tcp: bool = False, wait: float = 2.0
    ) -> dns.message.Message:
        if tcp:
            return await dns.asyncquery.tcp(message, self.host, port=self.port, timeout=wait)
        return await dns.asyncquery.udp(message, self.host, port=self.port, timeout=wait)

    async def raw_udp(self, data: bytes, *, wait: float = 1.0) -> bytes | None:
        """Send any bytes in one datagram; the first reply, or None after ``wait`` seconds."""
        loop = asyncio.get_running_loop()
        received: asyncio.Future[bytes] = loop.create_future()

        class Protocol(asyncio.DatagramProtocol):
            def datagram_received(self, reply: bytes, addr: object) -> None:
                if not received.done():
                    received.set_result(reply)

        transport, _ = await loop.create_datagram_endpoint(
            Protocol, remote_addr=(self.host, self.port)
        )
        try:
            transport.sendto(data)
            return await asyncio.wait_for(received, wait)
        except TimeoutError:
            return None
        finally:
            transport.close()

    async def tcp_exchange(
        self, frames: list[bytes], replies: int, *, wait: float = 2.0
    ) -> list[bytes]:
        """Write ``frames`` (each length-prefixed) on one connection, read ``replies``."""
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            writer.write(b"".join(len(frame).to_bytes(2, "big") + frame for frame in frames))
            await writer.drain()
            out = []
            async with asyncio.timeout(wait):
                for _ in range(replies):
                    length = int.from_bytes(await reader.readexactly(2), "big")
                    out.append(await reader.readexactly(length))
            return out
        finally:
            writer.close()
            await writer.wait_closed()


@pytest.fixture
async def dns_server(zones: Zones) -> AsyncIterator[RunningServer]:
    """A server in the test's event loop, on 127.0.0.1 and a free port."""
    logs: list[QueryLog] = []
    server = DnsServer(zones, on_query=logs.append)
    host, port = await server.start("127.0.0.1", 0)
    yield RunningServer(server, host, port, logs)
    await server.stop()


@pytest.fixture
def threaded_server() -> Iterator[RunningServer]:
    """A server on its own event loop in a thread, for blocking clients (dig, hypothesis)."""
    loop = asyncio.new_event_loop()
    logs: list[QueryLog] = []
    server = DnsServer(standard_zones(), on_query=logs.append)
    address = loop.run_until_complete(server.start("127.0.0.1", 0))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield RunningServer(server, address[0], address[1], logs)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.run_until_complete(server.stop())
        loop.close()
