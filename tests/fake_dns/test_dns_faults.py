"""Fault injection, set at build time and toggled on the running server."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Any

import dns.asyncquery
import dns.exception
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from fake_dns import DnsFault, DnsServer, DomainSpec, QueryLog, build_zones

TIMEOUT = 0.3  # client timeout for "timeout" faults: short, the stub sends nothing


@pytest.fixture
async def faulty() -> AsyncIterator[tuple[DnsServer, list[QueryLog]]]:
    """beta.test configured with each fault at build time, alpha.test healthy."""
    specs = [
        DomainSpec("alpha.test", "127.0.0.11"),
        DomainSpec("servfail.test", "127.0.0.12", fault=DnsFault("servfail")),
        DomainSpec("timeout.test", "127.0.0.13", fault=DnsFault("timeout")),
        DomainSpec("nxdomain.test", "127.0.0.14", fault=DnsFault("nxdomain")),
        DomainSpec("slow.test", "127.0.0.15", fault=DnsFault(delay_ms=200)),
    ]
    logs: list[QueryLog] = []
    server = DnsServer(build_zones(specs, common_mx_port=25), on_query=logs.append)
    await server.start("127.0.0.1", 0)
    yield server, logs
    await server.stop()


async def ask(
    server: DnsServer, name: str, rdtype: str = "MX", *, tcp: bool = False, wait: float = 2.0
) -> dns.message.Message:
    host, port = server.address
    query = dns.message.make_query(name, rdtype)
    if tcp:
        return await dns.asyncquery.tcp(query, host, port=port, timeout=wait)
    return await dns.asyncquery.udp(query, host, port=port, timeout=wait)


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
async def test_build_time_faults(faulty: Any, tcp: bool) -> None:
    server, logs = faulty
    assert (await ask(server, "alpha.test", tcp=tcp)).rcode() == dns.rcode.NOERROR

    servfail = await ask(server, "servfail.test", tcp=tcp)
    assert servfail.rcode() == dns.rcode.SERVFAIL
    assert servfail.answer == []
    assert logs[-1].fault == "servfail"

    nxdomain = await ask(server, "mx.nxdomain.test", "A", tcp=tcp)
    assert nxdomain.rcode() == dns.rcode.NXDOMAIN
    assert nxdomain.authority[0].rdtype == dns.rdatatype.SOA

    with pytest.raises(dns.exception.Timeout):
        await ask(server, "timeout.test", tcp=tcp, wait=TIMEOUT)
    assert (logs[-1].rcode, logs[-1].fault) == ("TIMEOUT", "timeout")

    started = time.monotonic()
    slow = await ask(server, "slow.test", tcp=tcp)
    assert time.monotonic() - started >= 0.2
    assert slow.rcode() == dns.rcode.NOERROR
    assert slow.answer
    assert logs[-1].fault == "delay 200ms"


async def test_run_time_toggle(dns_server: Any) -> None:
    server: DnsServer = dns_server.server
    # Warm the rendered-reply cache first: a new fault must still take effect at once.
    assert (await dns_server.query("beta.test", "MX")).rcode() == dns.rcode.NOERROR

    server.set_fault("beta.test", DnsFault("servfail"))
    assert (await dns_server.query("beta.test", "MX")).rcode() == dns.rcode.SERVFAIL
    assert (await dns_server.query("alpha.test", "MX")).rcode() == dns.rcode.NOERROR

    server.set_fault("BETA.test.", DnsFault("nxdomain"))
    assert (await dns_server.query("beta.test", "MX")).rcode() == dns.rcode.NXDOMAIN

    server.set_fault("beta.test", DnsFault("timeout"))
    with pytest.raises(dns.exception.Timeout):
        await dns_server.query("beta.test", "MX", wait=TIMEOUT)

    server.set_fault("beta.test", DnsFault(delay_ms=150))
    started = time.monotonic()
    assert (await dns_server.query("beta.test", "MX", tcp=True)).answer
    assert time.monotonic() - started >= 0.15
    assert server.faults == {"beta.test": DnsFault(delay_ms=150)}

    server.clear_fault("beta.test")
    assert server.faults == {}
    assert (await dns_server.query("beta.test", "MX")).rcode() == dns.rcode.NOERROR
    assert dns_server.logs[-1].fault is None


async def test_clearing_build_time_fault(faulty: Any) -> None:
    server, _ = faulty
    server.clear_fault("servfail.test")
    assert (await ask(server, "servfail.test")).rcode() == dns.rcode.NOERROR
    server.set_fault("nxdomain.test", DnsFault())  # the "no fault" value clears too
    assert (await ask(server, "nxdomain.test")).rcode() == dns.rcode.NOERROR


async def test_combined_mode_and_delay(dns_server: Any) -> None:
    dns_server.server.set_fault("beta.test", DnsFault("servfail", delay_ms=100))
    started = time.monotonic()
    assert (await dns_server.query("beta.test", "MX")).rcode() == dns.rcode.SERVFAIL
    assert time.monotonic() - started >= 0.1
    assert dns_server.logs[-1].fault == "servfail+delay 100ms"


async def test_delay_does_not_block_other_queries(dns_server: Any) -> None:
    dns_server.server.set_fault("beta.test", DnsFault(delay_ms=300))
    order: list[str] = []

    async def timed(name: str) -> None:
        await dns_server.query(name, "MX")
        order.append(name)

    slow = asyncio.create_task(timed("beta.test"))
    await asyncio.sleep(0.05)
    await timed("alpha.test")
    assert order == ["alpha.test"]  # answered while beta.test's reply was held back
    await slow
    assert order == ["alpha.test", "beta.test"]


async def test_tcp_pipelined_replies_as_they_complete(dns_server: Any) -> None:
    dns_server.server.set_fault("beta.test", DnsFault(delay_ms=200))
    slow = dns.message.make_query("beta.test", "MX")
    fast = dns.message.make_query("alpha.test", "MX")
    wires = await dns_server.tcp_exchange([slow.to_wire(), fast.to_wire()], 2)
    assert [dns.message.from_wire(wire).id for wire in wires] == [fast.id, slow.id]


async def test_fault_scope_is_the_domain(dns_server: Any) -> None:
    dns_server.server.set_fault("beta.test", DnsFault("nxdomain"))
    for name, rdtype in [("mx.beta.test", "A"), ("_smtp._tcp.beta.test", "SRV")]:
        assert (await dns_server.query(name, rdtype)).rcode() == dns.rcode.NXDOMAIN
    assert (await dns_server.query("mx.alpha.test", "A")).rcode() == dns.rcode.NOERROR


async def test_set_fault_unknown_domain(dns_server: Any) -> None:
    with pytest.raises(KeyError):
        dns_server.server.set_fault("example.com", DnsFault("servfail"))
    with pytest.raises(KeyError):
        dns_server.server.clear_fault("example.com")


async def test_stop_drops_pending_delayed_replies(dns_server: Any) -> None:
    dns_server.server.set_fault("beta.test", DnsFault(delay_ms=5000))
    assert (
        await dns_server.raw_udp(dns.message.make_query("beta.test", "MX").to_wire(), wait=0.05)
        is None
    )
    await dns_server.server.stop()  # must not wait 5 s nor send after stopping


def test_fault_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        DnsFault().mode = "timeout"  # type: ignore[misc]
