"""The targets the fuzzers drive: each takes bytes and must never raise.

Shared by the atheris harness (``run.py``, coverage-guided, for a set time) and by the
hypothesis tests (``tests/test_fuzz_targets.py``), so both exercise the same code.
"""

from __future__ import annotations

from fake_dns import DnsServer, DomainSpec, build_zones
from sandbox.imap.parser import NEED_DATA as IMAP_NEED_DATA
from sandbox.imap.parser import Parser
from sandbox.pop3.codec import LineTooLong, NeedData, Pop3Codec

_ZONES = build_zones(
    [DomainSpec("alpha.test", "127.0.0.11", mx_port=2525), DomainSpec("beta.test", "127.0.0.12")],
    common_mx_port=2525,
)
_DNS = DnsServer(_ZONES)


def pop3_codec(data: bytes) -> int:
    """Feed bytes in two pieces; drain every command. Returns how many came out."""
    codec = Pop3Codec(max_line=512)
    count = 0
    for piece in (data[: len(data) // 2], data[len(data) // 2 :]):
        codec.receive_data(piece)
        while True:
            item = codec.next_command()
            if isinstance(item, NeedData):
                break
            count += 1
            assert isinstance(item, LineTooLong) or item.name == item.name.upper()
    return count


def imap_parser(data: bytes) -> int:
    """Feed bytes in two pieces; drain every command, continuation and error."""
    parser = Parser(max_line=4096, max_literal=4096)
    count = 0
    for piece in (data[: len(data) // 2], data[len(data) // 2 :]):
        parser.receive_data(piece)
        for _ in range(10_000):
            item = parser.next_command()
            if item is IMAP_NEED_DATA:
                break
            count += 1
    return count


def dns_handler(data: bytes) -> bytes | None:
    """One datagram through the stub's single failure-to-rcode function, both transports."""
    reply = _DNS._respond(data, False)
    _DNS._respond(data, True)
    return None if reply is None else reply.wire


TARGETS = {"pop3": pop3_codec, "imap": imap_parser, "dns": dns_handler}
