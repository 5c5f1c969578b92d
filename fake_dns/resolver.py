"""A dnspython resolver that asks the stub and nothing else."""

from __future__ import annotations

import ipaddress

import dns.asyncresolver
import dns.name


def make_resolver(host: str, port: int, *, timeout: float = 2.0) -> dns.asyncresolver.Resolver:
    """A resolver whose only nameserver is the stub at ``host:port``.

    Built with ``configure=False`` so /etc/resolv.conf is never read: no system
    nameservers, no search list, no domain appended, no cache. ``timeout`` bounds a whole
    lookup (``lifetime``) as well as each try. ``host`` must be an IP literal.
    """
    ipaddress.ip_address(host)  # a name would need the system resolver to find the stub
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = [host]
    resolver.port = port
    resolver.search = []
    resolver.domain = dns.name.root
    resolver.use_search_by_default = False
    resolver.ndots = 1
    resolver.timeout = timeout
    resolver.lifetime = timeout
    resolver.cache = None
    resolver.retry_servfail = False
    resolver.rotate = False
    return resolver
