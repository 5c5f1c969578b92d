"""Property tests: no bytes crash the server, and it keeps answering afterwards."""

from __future__ import annotations

import socket
from typing import Any

import dns.message
import dns.rcode
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fake_dns import DnsServer

REAL_QUERIES = [
    dns.message.make_query(name, rdtype, use_edns=edns).to_wire()
    for name, rdtype in [("beta.test", "MX"), ("mx.alpha.test", "AAAA"), ("big.alpha.test", "TXT")]
    for edns in (False, 0)
]
FUZZ = settings(
    max_examples=300,
    deadline=None,
    database=None,  # no .hypothesis/ directory left behind
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@st.composite
def mutated_queries(draw: st.DrawFn) -> bytes:
    """A real query with a few bytes flipped, cut, or inserted."""
    data = bytearray(draw(st.sampled_from(REAL_QUERIES)))
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["flip", "cut", "insert"]))
        position = draw(st.integers(0, max(len(data) - 1, 0)))
        if action == "flip" and data:
            data[position] = draw(st.integers(0, 255))
        elif action == "cut":
            del data[position:]
        else:
            data[position:position] = draw(st.binary(min_size=1, max_size=8))
    return bytes(data)


packets = st.one_of(st.binary(max_size=600), mutated_queries())


def good_query_answered(host: str, port: int) -> bool:
    """A fresh socket asks beta.test MX and checks the reply (ignoring any stray datagram)."""
    query = dns.message.make_query("beta.test", "MX")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.sendto(query.to_wire(), (host, port))
        reply = dns.message.from_wire(sock.recv(65535))
    return reply.id == query.id and reply.rcode() == dns.rcode.NOERROR and bool(reply.answer)


@FUZZ
@given(data=packets)
def test_respond_never_raises(threaded_server: Any, data: bytes) -> None:
    """The one function that turns bytes into a reply: any input, a reply or None."""
    server: DnsServer = threaded_server.server
    for tcp in (False, True):
        reply = server._respond(data, tcp)
        wire = None if reply is None else reply.for_query(data)
        if wire is not None:
            assert len(wire) >= 12
            assert wire[:2] == data[:2]  # the ID is echoed
            dns.message.from_wire(wire)  # and what we send parses


@FUZZ
@given(data=packets)
def test_udp_garbage_then_good_query(threaded_server: Any, data: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(data, (threaded_server.host, threaded_server.port))
    assert good_query_answered(threaded_server.host, threaded_server.port)


@settings(FUZZ, max_examples=100)
@given(data=packets)
def test_tcp_garbage_then_good_query(threaded_server: Any, data: bytes) -> None:
    address = (threaded_server.host, threaded_server.port)
    # Framed garbage, then a good query on the same connection: it is answered.
    query = dns.message.make_query("mx.beta.test", "A")
    with socket.create_connection(address, timeout=2) as sock:
        good = query.to_wire()
        sock.sendall(len(data).to_bytes(2, "big") + data + len(good).to_bytes(2, "big") + good)
        buffer = b""
        while True:
            while len(buffer) < 2 or len(buffer) < 2 + int.from_bytes(buffer[:2], "big"):
                chunk = sock.recv(65535)
                assert chunk, "connection closed before the good query was answered"
                buffer += chunk
            length = int.from_bytes(buffer[:2], "big")
            frame, buffer = buffer[2 : 2 + length], buffer[2 + length :]
            try:
                reply = dns.message.from_wire(frame)
            except Exception:
                continue
            if reply.id == query.id and reply.question == query.question:
                assert reply.answer
                break
    # Raw, unframed garbage on another connection, closed abruptly: the server goes on.
    with socket.create_connection(address, timeout=2) as sock:
        sock.sendall(data)
    assert good_query_answered(*address)
