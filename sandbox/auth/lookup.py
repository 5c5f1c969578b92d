"""The one way authentication asks DNS: over the wire, to the stub, and nothing else.

Checks run in a worker thread (dkimpy and pyspf are synchronous), so this is a
synchronous dnspython resolver built with ``configure=False``: /etc/resolv.conf is never
read. Every answer is kept in ``log`` so a verdict can say which record it used, and a
timeout is told apart from "no such record" (RFC 8601 §2.7: temperror vs permerror).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver

DEFAULT_TIMEOUT = 2.0


class LookupTimeout(Exception):
    """The stub sent no answer in time (or answered SERVFAIL): a temporary error."""


@dataclass(frozen=True)
class Looked:
    """One lookup and what came back: the records, "none", or "timeout"."""

    name: str
    rdtype: str
    outcome: str  # "answer", "nxdomain", "nodata", "refused" (outside the zones), "timeout"
    values: tuple[str, ...] = ()


@dataclass
class StubLookup:
    """Lookups against the stub at ``host:port``; ``log`` grows with each one."""

    host: str
    port: int
    timeout: float = DEFAULT_TIMEOUT
    # Shared between checks, as a receiver's resolver caches by TTL; None: ask every time.
    cache: dns.resolver.Cache | None = None
    # Names the stub refused (outside its zones), shared like ``cache``: that never changes.
    outside: set[tuple[str, str]] = field(default_factory=set)
    log: list[Looked] = field(default_factory=list)

    def __post_init__(self) -> None:
        ipaddress.ip_address(self.host)  # a name would need the system resolver
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [self.host]
        resolver.port = self.port
        resolver.search = []
        resolver.domain = dns.name.root
        resolver.use_search_by_default = False
        resolver.timeout = self.timeout
        resolver.lifetime = self.timeout
        resolver.retry_servfail = False
        resolver.cache = self.cache
        self._resolver = resolver

    def records(self, name: str, rdtype: str) -> list[dns.rdata.Rdata]:
        """The rdatas at ``name``; [] when there are none; ``LookupTimeout`` when unsure."""
        text = name if name.endswith(".") else name + "."
        if (text.lower(), rdtype) in self.outside:
            self.log.append(Looked(text, rdtype, "refused"))
            return []
        try:
            answer = self._resolver.resolve(text, rdtype, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            self.log.append(Looked(text, rdtype, "nxdomain"))
            return []
        except dns.resolver.NoNameservers as exc:
            if _all_refused(exc):
                # Outside every zone the stub serves: it knows no records there, which is
                # "none", not a temporary error.
                self.log.append(Looked(text, rdtype, "refused"))
                self.outside.add((text.lower(), rdtype))
                return []
            self.log.append(Looked(text, rdtype, "timeout"))
            raise LookupTimeout(f"the DNS stub failed to answer {text} {rdtype}") from exc
        except dns.exception.Timeout as exc:
            self.log.append(Looked(text, rdtype, "timeout"))
            raise LookupTimeout(f"no answer from the DNS stub for {text} {rdtype}") from exc
        except dns.exception.DNSException:
            self.log.append(Looked(text, rdtype, "nxdomain"))
            return []
        rdatas = list(answer.rrset or [])
        values = tuple(_text(r) for r in rdatas)
        self.log.append(Looked(text, rdtype, "answer" if rdatas else "nodata", values))
        return rdatas

    def txt(self, name: str) -> list[bytes]:
        """Each TXT record at ``name``, its strings joined (RFC 7208 §3.3)."""
        return [b"".join(r.strings) for r in self.records(name, "TXT")]  # type: ignore[attr-defined]

    def last(self, name: str, rdtype: str = "TXT") -> Looked | None:
        """The latest lookup of ``name`` and type."""
        wanted = name if name.endswith(".") else name + "."
        for looked in reversed(self.log):
            if looked.name.lower() == wanted.lower() and looked.rdtype == rdtype:
                return looked
        return None


def outside_hint(domain: str) -> str:
    """What to do when the stub serves no zone for a sending domain."""
    return (
        f"the sandbox's DNS has no zone for {domain}; to check its real records, add them"
        f' under [real_domains."{domain}"] in the configuration'
    )


def _all_refused(exc: dns.resolver.NoNameservers) -> bool:
    errors = exc.kwargs.get("errors") or []
    return bool(errors) and all(len(e) > 3 and e[3] == "REFUSED" for e in errors)


def _text(rdata: dns.rdata.Rdata) -> str:
    if rdata.rdtype == dns.rdatatype.TXT:
        return b"".join(rdata.strings).decode("utf-8", "replace")  # type: ignore[attr-defined]
    return rdata.to_text()
