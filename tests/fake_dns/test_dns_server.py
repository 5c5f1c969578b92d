"""The server over real sockets, with dnspython's client and raw bytes."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import dns.asyncquery
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.reversename
import pytest

from fake_dns import DnsServer, QueryLog, Zones

RECORDS = [
    ("alpha.test", "SOA", "ns.alpha.test. hostmaster.alpha.test. 1 3600 600 86400 60"),
    ("alpha.test", "NS", "ns.alpha.test."),
    ("beta.test", "MX", "10 mx.beta.test."),
    ("mx.beta.test", "A", "127.0.0.12"),
    ("mx.alpha.test", "AAAA", "fd00::11"),
    ("beta.test", "TXT", '"v=spf1 ip4:127.0.0.12 -all"'),
    ("_smtp._tcp.beta.test", "SRV", "0 0 2526 mx.beta.test."),
    ("12.0.0.127.in-addr.arpa", "PTR", "mx.beta.test."),
    ("www.alpha.test", "CNAME", "alpha.test."),
    ("delta.test", "MX", "0 ."),
]


def rdata_texts(response: dns.message.Message) -> list[str]:
    return sorted(rdata.to_text() for rrset in response.answer for rdata in rrset)


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
@pytest.mark.parametrize(("name", "rdtype", "expected"), RECORDS)
async def test_every_record_type(dns_server: Any, tcp: bool, name: str, rdtype: str, expected: str):
    response = await dns_server.query(name, rdtype, tcp=tcp)
    assert response.rcode() == dns.rcode.NOERROR
    assert rdata_texts(response) == [expected]
    assert response.answer[0].rdtype == dns.rdatatype.from_text(rdtype)


async def test_authoritative_flags(dns_server: Any) -> None:
    with_rd = await dns_server.query("beta.test", "MX")
    assert with_rd.flags & dns.flags.AA
    assert with_rd.flags & dns.flags.RD
    assert not with_rd.flags & dns.flags.RA
    query = dns.message.make_query("beta.test", "MX")
    query.flags &= ~dns.flags.RD
    without_rd = await dns_server.send(query)
    assert not without_rd.flags & dns.flags.RD
    assert without_rd.flags & dns.flags.AA


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
async def test_nxdomain_nodata_refused(dns_server: Any, tcp: bool) -> None:
    nxdomain = await dns_server.query("nope.beta.test", "A", tcp=tcp)
    assert nxdomain.rcode() == dns.rcode.NXDOMAIN
    assert nxdomain.answer == []
    assert [rrset.rdtype for rrset in nxdomain.authority] == [dns.rdatatype.SOA]
    assert nxdomain.flags & dns.flags.AA

    nodata = await dns_server.query("mx.beta.test", "MX", tcp=tcp)
    assert nodata.rcode() == dns.rcode.NOERROR
    assert nodata.answer == []
    assert nodata.authority[0].rdtype == dns.rdatatype.SOA

    ent = await dns_server.query("_tcp.beta.test", "A", tcp=tcp)
    assert (ent.rcode(), ent.answer) == (dns.rcode.NOERROR, [])

    refused = await dns_server.query("example.com", "A", tcp=tcp)
    assert refused.rcode() == dns.rcode.REFUSED
    assert refused.answer == refused.authority == []
    assert not refused.flags & dns.flags.AA


async def test_cname_chain_answer(dns_server: Any) -> None:
    response = await dns_server.query("alias.alpha.test", "A")
    assert [rrset.rdtype for rrset in response.answer] == [
        dns.rdatatype.CNAME,
        dns.rdatatype.CNAME,
        dns.rdatatype.A,
    ]


@pytest.mark.parametrize("name", ["MX.BeTa.TeSt", "BETA.TEST.", "bEtA.tEsT"])
async def test_case_variations(dns_server: Any, name: str) -> None:
    rdtype = "A" if name.lower().startswith("mx") else "MX"
    response = await dns_server.query(name, rdtype)
    assert response.rcode() == dns.rcode.NOERROR
    assert response.answer
    # The question comes back exactly as asked (0x20-style case randomisation works).
    assert response.question[0].name.to_text() == dns.name.from_text(name).to_text()


async def test_large_txt_truncated_over_udp_full_over_tcp(dns_server: Any) -> None:
    udp = await dns_server.query("big.alpha.test", "TXT")
    assert udp.flags & dns.flags.TC
    assert udp.edns < 0  # no OPT in the query, none in the reply
    udp_1232 = await dns_server.query("big.alpha.test", "TXT", use_edns=0, payload=1232)
    assert udp_1232.flags & dns.flags.TC
    assert udp_1232.edns == 0
    tcp = await dns_server.query("big.alpha.test", "TXT", tcp=True)
    assert not tcp.flags & dns.flags.TC
    assert len(tcp.answer[0]) == 24


async def test_edns_payload_from_query(dns_server: Any) -> None:
    response = await dns_server.query("big.alpha.test", "TXT", use_edns=0, payload=4096)
    assert not response.flags & dns.flags.TC
    assert len(response.answer[0]) == 24
    assert response.edns == 0
    assert response.payload == 4096


@pytest.mark.parametrize("tcp", [False, True])
async def test_do_bit_is_copied_into_the_reply(dns_server: Any, tcp: bool) -> None:
    """RFC 3225 §3: DO set in the query is set in the reply; clear stays clear."""
    signed = await dns_server.query("beta.test", "MX", tcp=tcp, want_dnssec=True)
    assert signed.ednsflags & dns.flags.DO
    assert rdata_texts(signed) == ["10 mx.beta.test."]
    nxdomain = await dns_server.query("nope.beta.test", "A", tcp=tcp, want_dnssec=True)
    assert nxdomain.rcode() == dns.rcode.NXDOMAIN and nxdomain.ednsflags & dns.flags.DO
    plain = await dns_server.query("beta.test", "MX", tcp=tcp, use_edns=0)
    assert plain.edns == 0 and not plain.ednsflags & dns.flags.DO


async def test_edns_tiny_payload_means_512(dns_server: Any) -> None:
    query = dns.message.make_query("beta.test", "MX", use_edns=0, payload=100)
    response = await dns_server.send(query)
    assert response.rcode() == dns.rcode.NOERROR
    assert rdata_texts(response) == ["10 mx.beta.test."]


async def test_several_queries_on_one_tcp_connection(dns_server: Any) -> None:
    questions = [("beta.test", "MX"), ("mx.beta.test", "A"), ("nope.beta.test", "A")]
    queries = [dns.message.make_query(name, rdtype) for name, rdtype in questions]
    wires = await dns_server.tcp_exchange([query.to_wire() for query in queries], 3)
    replies = {reply.id: reply for reply in map(dns.message.from_wire, wires)}
    assert [replies[query.id].rcode() for query in queries] == [
        dns.rcode.NOERROR,
        dns.rcode.NOERROR,
        dns.rcode.NXDOMAIN,
    ]
    for query in queries:
        assert replies[query.id].question == query.question
    # Sequential use of the same connection, then an idle close by the client.
    reader, writer = await asyncio.open_connection(dns_server.host, dns_server.port)
    for query in queries:
        wire = query.to_wire()
        writer.write(len(wire).to_bytes(2, "big") + wire)
        length = int.from_bytes(await reader.readexactly(2), "big")
        assert dns.message.from_wire(await reader.readexactly(length)).id == query.id
    writer.close()
    await writer.wait_closed()


def header(query_id: int = 0x1234, flags: int = 0x0100, qd: int = 1, an: int = 0) -> bytes:
    return struct.pack("!HHHHHH", query_id, flags, qd, an, 0, 0)


async def test_formerr_for_readable_header_with_broken_body(dns_server: Any) -> None:
    reply = await dns_server.raw_udp(header() + b"\x07garbage")
    assert reply is not None
    response = dns.message.from_wire(reply)
    assert response.id == 0x1234
    assert response.rcode() == dns.rcode.FORMERR
    assert response.opcode() == dns.opcode.QUERY
    assert response.flags & dns.flags.QR
    assert response.question == []
    assert dns_server.logs[-1].rcode == "FORMERR"


async def test_formerr_over_tcp(dns_server: Any) -> None:
    (reply,) = await dns_server.tcp_exchange([header(7) + b"\xff\xff"], 1)
    assert dns.message.from_wire(reply).rcode() == dns.rcode.FORMERR


async def test_formerr_for_two_questions(dns_server: Any) -> None:
    query = dns.message.make_query("beta.test", "MX")
    query.question.append(dns.message.make_query("alpha.test", "MX").question[0])
    response = dns.message.from_wire(await dns_server.raw_udp(query.to_wire()))
    assert response.rcode() == dns.rcode.FORMERR
    assert response.id == query.id


async def test_no_question_is_formerr(dns_server: Any) -> None:
    reply = await dns_server.raw_udp(header(qd=0))
    assert dns.message.from_wire(reply).rcode() == dns.rcode.FORMERR


@pytest.mark.parametrize("opcode", [dns.opcode.NOTIFY, dns.opcode.UPDATE, dns.opcode.STATUS])
async def test_other_opcodes_notimp(dns_server: Any, opcode: dns.opcode.Opcode) -> None:
    query = dns.message.make_query("beta.test", "SOA")
    query.set_opcode(opcode)
    reply = await dns_server.raw_udp(query.to_wire())
    assert reply is not None
    response = dns.message.from_wire(reply)
    assert response.rcode() == dns.rcode.NOTIMP
    assert response.opcode() == opcode
    assert response.id == query.id


async def test_short_packet_and_responses_dropped(dns_server: Any) -> None:
    assert await dns_server.raw_udp(b"\x12\x34\x01", wait=0.2) is None
    assert await dns_server.raw_udp(b"", wait=0.2) is None
    as_response = dns.message.make_query("beta.test", "MX")
    as_response.flags |= dns.flags.QR
    assert await dns_server.raw_udp(as_response.to_wire(), wait=0.2) is None
    assert (await dns_server.query("beta.test", "MX")).rcode() == dns.rcode.NOERROR


async def test_edns_version_1_is_badvers(dns_server: Any) -> None:
    response = await dns_server.query("beta.test", "MX", use_edns=1)
    assert response.rcode() == dns.rcode.BADVERS
    assert response.edns == 0


async def test_class_chaos_and_zone_transfer_refused(dns_server: Any) -> None:
    chaos = dns.message.make_query("version.bind", "TXT", rdclass=dns.rdataclass.CH)
    assert (await dns_server.send(chaos)).rcode() == dns.rcode.REFUSED
    axfr = await dns_server.query("alpha.test", "AXFR", tcp=True)
    assert axfr.rcode() == dns.rcode.REFUSED


async def test_any_query(dns_server: Any) -> None:
    response = await dns_server.query("beta.test", "ANY", tcp=True)
    assert {rrset.rdtype for rrset in response.answer} >= {dns.rdatatype.MX, dns.rdatatype.SOA}


async def test_query_log(dns_server: Any) -> None:
    for _ in range(2):  # the second reply comes from the rendered-reply cache
        query = dns.message.make_query("beta.test", "MX")
        await dns_server.send(query)
        log = dns_server.logs[-1]
        assert isinstance(log, QueryLog)
        assert log.client.startswith("127.0.0.1:")
        assert (log.transport, log.qname, log.qtype, log.rcode) == (
            "udp",
            "beta.test.",
            "MX",
            "NOERROR",
        )
        assert log.answer == "MX 10 mx.beta.test."
        assert log.query_id == query.id
        assert log.micros >= 0
        assert log.fault is None
    await dns_server.query("mx.beta.test", "A", tcp=True)
    assert (dns_server.logs[-1].transport, dns_server.logs[-1].answer) == ("tcp", "A 127.0.0.12")
    with pytest.raises(AttributeError):
        dns_server.logs[-1].rcode = "x"


async def test_on_query_exception_does_not_break_answering(
    zones: Zones, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(log: QueryLog) -> None:
        raise RuntimeError("subscriber bug")

    server = DnsServer(zones, on_query=broken)
    host, port = await server.start("127.0.0.1", 0)
    try:
        for _ in range(3):
            query = dns.message.make_query("beta.test", "MX")
            response = await dns.asyncquery.udp(query, host, port=port, timeout=2)
            assert response.rcode() == dns.rcode.NOERROR
    finally:
        await server.stop()
    assert "on_query callback failed" in caplog.text


async def test_handler_crash_is_servfail(
    dns_server: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def boom(*args: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(dns_server.server.zones, "lookup", boom)
    query = dns.message.make_query("crash.beta.test", "A")
    response = await dns_server.send(query)
    assert response.rcode() == dns.rcode.SERVFAIL
    assert response.id == query.id
    assert "failed answering" in caplog.text
    monkeypatch.undo()
    assert (await dns_server.query("beta.test", "MX")).rcode() == dns.rcode.NOERROR


async def test_udp_and_tcp_on_same_port(dns_server: Any) -> None:
    assert dns_server.server.address == (dns_server.host, dns_server.port)
    udp = await dns_server.query("beta.test", "MX")
    tcp = await dns_server.query("beta.test", "MX", tcp=True)
    assert udp.answer == tcp.answer


async def test_port_zero_retries_when_tcp_port_taken(
    zones: Zones, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_start_server = asyncio.start_server
    calls: list[int] = []

    async def flaky_start_server(*args: Any, **kwargs: Any) -> asyncio.Server:
        calls.append(args[2])
        if len(calls) == 1:
            raise OSError(98, "Address already in use")
        return await real_start_server(*args, **kwargs)

    monkeypatch.setattr(asyncio, "start_server", flaky_start_server)
    server = DnsServer(zones)
    host, port = await server.start("127.0.0.1", 0)
    try:
        # At least one retry; more when another process on this machine really holds the
        # TCP port that the next free UDP port pairs with.
        assert len(calls) >= 2
        assert calls[-1] == port
        response = await dns.asyncquery.tcp(
            dns.message.make_query("beta.test", "MX"), host, port=port, timeout=2
        )
        assert response.answer
    finally:
        await server.stop()


async def test_start_needs_ip_literal_and_address_needs_start(zones: Zones) -> None:
    server = DnsServer(zones)
    with pytest.raises(RuntimeError):
        _ = server.address
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 address"):
        await server.start("localhost", 0)


async def test_tcp_idle_timeout_closes(zones: Zones) -> None:
    server = DnsServer(zones, tcp_idle_timeout=0.1)
    host, port = await server.start("127.0.0.1", 0)
    try:
        reader, writer = await asyncio.open_connection(host, port)
        async with asyncio.timeout(5):
            assert await reader.read() == b""
        writer.close()
        await writer.wait_closed()
    finally:
        await server.stop()


async def test_max_tcp_message(zones: Zones) -> None:
    server = DnsServer(zones, max_tcp_message=512)
    host, port = await server.start("127.0.0.1", 0)
    try:
        big = await dns.asyncquery.tcp(
            dns.message.make_query("big.alpha.test", "TXT"), host, port=port, timeout=2
        )
        assert big.flags & dns.flags.TC  # the reply did not fit our own TCP limit
        reader, writer = await asyncio.open_connection(host, port)
        writer.write((600).to_bytes(2, "big") + bytes(600))
        async with asyncio.timeout(5):
            assert await reader.read() == b""  # oversized query: connection closed
        writer.close()
        await writer.wait_closed()
    finally:
        await server.stop()


async def test_stop_closes_tcp_connections(zones: Zones) -> None:
    server = DnsServer(zones)
    host, port = await server.start("127.0.0.1", 0)
    reader, writer = await asyncio.open_connection(host, port)
    query = dns.message.make_query("beta.test", "MX").to_wire()
    writer.write(len(query).to_bytes(2, "big") + query)
    await reader.readexactly(2)
    await server.stop()
    async with asyncio.timeout(5):
        await reader.read()  # EOF (or the rest of the reply, then EOF)
        assert reader.at_eof()
    writer.close()
    await writer.wait_closed()


async def test_ipv6_reverse_and_ptr_over_udp(dns_server: Any) -> None:
    name = dns.reversename.from_address("fd00::11").to_text()
    response = await dns_server.query(name, "PTR")
    assert rdata_texts(response) == ["mx.alpha.test."]


async def test_ipv6_listener(zones: Zones) -> None:
    logs: list[QueryLog] = []
    server = DnsServer(zones, on_query=logs.append)
    try:
        host, port = await server.start("::1", 0)
    except OSError:
        pytest.skip("no IPv6 loopback here")
    try:
        for tcp in (False, True):
            query = dns.message.make_query("beta.test", "MX")
            send = dns.asyncquery.tcp if tcp else dns.asyncquery.udp
            response = await send(query, host, port=port, timeout=2)
            assert response.answer
        assert logs[-1].client.startswith("[::1]:")
    finally:
        await server.stop()
