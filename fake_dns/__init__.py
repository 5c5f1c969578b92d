"""An authoritative DNS stub for the sandbox's fake domains (UDP and TCP, asyncio).

It answers for the configured domains and their reverse zones only: REFUSED for every
other name, never recursion, never the real internet. Usable alone (``python -m
fake_dns``); it never imports ``sandbox``.
"""

from fake_dns.faults import DnsFault, FaultMode
from fake_dns.resolver import make_resolver
from fake_dns.server import DnsServer, QueryLog
from fake_dns.zone import Answer, DomainSpec, ExtraRecord, MxHost, Zones, build_zones

__all__ = [
    "Answer",
    "DnsFault",
    "DnsServer",
    "DomainSpec",
    "ExtraRecord",
    "FaultMode",
    "MxHost",
    "QueryLog",
    "Zones",
    "build_zones",
    "make_resolver",
]
