"""Where to deliver mail for a domain, found the way RFC 5321 §5.1 says, through the stub.

MX records in preference order (random among equals), each host's addresses in turn; no
MX at all → the domain's own address (implicit MX); a null MX (RFC 7505) → bounce. The
port comes from the stub's ``_smtp._tcp`` SRV record where a domain's server is not on
the common MX port. Only the sandbox's resolver is ever asked.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import dns.asyncresolver
import dns.exception
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.resolver

from sandbox.store import Hop, Outcome, Step


@dataclass(frozen=True)
class Target:
    host: str
    preference: int
    addresses: tuple[str, ...]
    port: int


@dataclass(frozen=True)
class Route:
    targets: tuple[Target, ...]
    hops: tuple[Hop, ...] = ()


@dataclass(frozen=True)
class NoRoute:
    """No way to the domain: ``permanent`` bounces, otherwise the delivery is retried."""

    permanent: bool
    reply: str
    hops: tuple[Hop, ...] = field(default_factory=tuple)


async def find_route(
    resolver: dns.asyncresolver.Resolver, domain: str, common_port: int
) -> Route | NoRoute:
    hops: list[Hop] = []

    def hop(outcome: str, **detail: Any) -> None:
        if detail.get("cached") is False:
            del detail["cached"]
        hops.append(Hop(Step.DNS, outcome, {"domain": domain, **detail}))

    try:
        answer, cached = await _resolve(resolver, domain, "MX")
    except dns.resolver.NXDOMAIN:
        hop(Outcome.NXDOMAIN, query=f"{domain} MX")
        return NoRoute(True, f"550 5.1.2 {domain}: no such domain (NXDOMAIN)", tuple(hops))
    except (dns.exception.Timeout, dns.resolver.NoNameservers) as exc:
        hop(Outcome.FAILED, query=f"{domain} MX", error=_dns_error(exc))
        return NoRoute(
            False, f"451 4.4.3 {domain}: DNS lookup failed ({_dns_error(exc)})", tuple(hops)
        )

    records = [(int(r.preference), r.exchange) for r in answer.rrset] if answer.rrset else []
    if len(records) == 1 and records[0][1] == dns.name.root:
        hop(Outcome.NULL_MX, query=f"{domain} MX", answer="0 .", cached=cached)
        return NoRoute(
            True,
            f"556 5.1.10 {domain} accepts no mail: it publishes a null MX (RFC 7505)",
            tuple(hops),
        )
    ports = await _srv_ports(resolver, domain)
    if not records:
        # RFC 5321 §5.1: no MX records → the domain itself is the host, preference 0.
        hop(
            Outcome.IMPLICIT_MX,
            query=f"{domain} MX",
            answer="no MX: trying the domain's A record",
            cached=cached,
        )
        hosts = [(0, domain)]
    else:
        answer_text = ", ".join(f"{p} {h}" for p, h in sorted(records))
        hop(Outcome.MX, query=f"{domain} MX", answer=answer_text, cached=cached)
        hosts = [(pref, name.to_text(omit_final_dot=True)) for pref, name in _order(records)]

    targets = []
    for preference, host in hosts:
        addresses, cached = await _addresses(resolver, host)
        hop(
            Outcome.ADDRESS if addresses else Outcome.NO_ADDRESS,
            query=f"{host} A",
            answer=", ".join(addresses) or "none",
            cached=cached,
        )
        if addresses:
            port = ports.get(host.lower(), common_port)
            targets.append(Target(host, preference, tuple(addresses), port))
    if not targets:
        return NoRoute(
            False, f"451 4.4.4 {domain}: no MX host has an address; will retry", tuple(hops)
        )
    return Route(tuple(targets), tuple(hops))


def _order(records: list[tuple[int, dns.name.Name]]) -> list[tuple[int, dns.name.Name]]:
    """RFC 5321 §5.1: lowest preference first, random order among equal preferences."""
    shuffled = records[:]
    random.shuffle(shuffled)
    return sorted(shuffled, key=lambda r: r[0])


async def _resolve(
    resolver: dns.asyncresolver.Resolver, name: str, rdtype: str
) -> tuple[dns.resolver.Answer, bool]:
    """An answer, and whether it came from the resolver's cache (shown in the journey)."""
    cached = False
    if resolver.cache is not None:
        key = (dns.name.from_text(name), dns.rdatatype.from_text(rdtype), dns.rdataclass.IN)
        cached = resolver.cache.get(key) is not None
    return await resolver.resolve(name, rdtype, raise_on_no_answer=False), cached


async def _addresses(resolver: dns.asyncresolver.Resolver, host: str) -> tuple[list[str], bool]:
    try:
        answer, cached = await _resolve(resolver, host, "A")
    except dns.exception.DNSException:
        return [], False
    return ([r.address for r in answer.rrset] if answer.rrset else []), cached


async def _srv_ports(resolver: dns.asyncresolver.Resolver, domain: str) -> dict[str, int]:
    """Ports from ``_smtp._tcp.<domain>`` SRV records, by target host; none is normal."""
    try:
        answer, _ = await _resolve(resolver, f"_smtp._tcp.{domain}", "SRV")
    except dns.exception.DNSException:
        return {}
    if not answer.rrset:
        return {}
    return {r.target.to_text(omit_final_dot=True).lower(): int(r.port) for r in answer.rrset}


def _dns_error(exc: Exception) -> str:
    if isinstance(exc, dns.exception.Timeout):
        return "no answer in time"
    return "SERVFAIL" if isinstance(exc, dns.resolver.NoNameservers) else type(exc).__name__
