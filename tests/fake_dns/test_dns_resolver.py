"""make_resolver: dnspython's stub resolver pointed at the stub only."""

from __future__ import annotations

from typing import Any

import dns.resolver
import pytest

from fake_dns import make_resolver


def test_resolver_uses_only_the_stub() -> None:
    resolver = make_resolver("127.0.0.1", 5353, timeout=0.5)
    assert resolver.nameservers == ["127.0.0.1"]
    assert resolver.port == 5353
    assert resolver.search == []
    assert resolver.lifetime == 0.5
    assert resolver.cache is None
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 address"):
        make_resolver("localhost", 53)


async def test_resolve_mx_then_a(dns_server: Any) -> None:
    resolver = make_resolver(dns_server.host, dns_server.port)
    mx = await resolver.resolve("beta.test", "MX")
    assert [(r.preference, r.exchange.to_text()) for r in mx] == [(10, "mx.beta.test.")]
    a = await resolver.resolve(mx[0].exchange, "A")
    assert [r.address for r in a] == ["127.0.0.12"]
    srv = await resolver.resolve("_smtp._tcp.beta.test", "SRV")
    assert srv[0].port == 2526


async def test_resolve_relative_name_is_not_searched(dns_server: Any) -> None:
    resolver = make_resolver(dns_server.host, dns_server.port)
    # "beta.test" without a dot is still absolute: no search domain appended.
    answer = await resolver.resolve("mx.beta.test", "A", search=False)
    assert answer.qname.to_text() == "mx.beta.test."


async def test_resolver_errors(dns_server: Any) -> None:
    resolver = make_resolver(dns_server.host, dns_server.port, timeout=1.0)
    with pytest.raises(dns.resolver.NXDOMAIN):
        await resolver.resolve("nope.beta.test", "A")
    with pytest.raises(dns.resolver.NoAnswer):
        await resolver.resolve("gamma.test", "MX")  # no MX: implicit MX via the A
    with pytest.raises(dns.resolver.NoNameservers):
        await resolver.resolve("example.com", "A")  # REFUSED: never the real internet


async def test_resolver_falls_back_to_tcp_on_truncation(dns_server: Any) -> None:
    resolver = make_resolver(dns_server.host, dns_server.port)
    answer = await resolver.resolve("big.alpha.test", "TXT")
    assert len(answer) == 24
    assert [log.transport for log in dns_server.logs[-2:]] == ["udp", "tcp"]
