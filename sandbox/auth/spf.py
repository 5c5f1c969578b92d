"""SPF (RFC 7208) with pyspf, the reference implementation, answered by the stub.

pyspf has a single DNS seam: the module-level ``spf.DNSLookup``. It is pointed, once, at
a function that asks the ``StubLookup`` of the check running in this context (a context
variable, so concurrent checks of different sandboxes never mix); with no check in
context it fails with TempError. pyspf therefore never reaches the system resolver.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass
from typing import Any

import spf

from sandbox.auth.lookup import LookupTimeout, StubLookup, outside_hint

_current: contextvars.ContextVar[StubLookup] = contextvars.ContextVar("sandbox_spf_lookup")


def _stub_dns(name: str, qtype: str, strict: Any = True, timeout: Any = None) -> list[Any]:
    """pyspf's ``DNSLookup`` contract: [((name, type), value), …], TempError on timeout."""
    lookup = _current.get(None)
    if lookup is None:
        raise spf.TempError("DNS: no sandbox DNS stub for this check")
    try:
        rdatas = lookup.records(name, qtype)
    except LookupTimeout as exc:
        raise spf.TempError(f"DNS {exc}") from None
    result: list[Any] = []
    for rdata in rdatas:
        if qtype in ("A", "AAAA"):
            value: Any = rdata.address  # type: ignore[attr-defined]
        elif qtype == "MX":
            value = (rdata.preference, rdata.exchange)  # type: ignore[attr-defined]
        elif qtype == "PTR":
            value = rdata.target.to_text(True)  # type: ignore[attr-defined]
        elif qtype in ("TXT", "SPF"):
            value = rdata.strings  # type: ignore[attr-defined]
        else:
            continue
        result.append(((name, qtype), value))
    return result


spf.DNSLookup = _stub_dns


@dataclass(frozen=True)
class SpfVerdict:
    """``result`` is RFC 8601's word: pass, fail, softfail, neutral, none, temperror,
    permerror; ``domain`` the one checked (MAIL FROM's, or HELO's for a null sender)."""

    result: str
    domain: str
    client: str
    record: str | None
    reason: str
    scope: str = "mailfrom"


def check_spf(lookup: StubLookup, client: str, mail_from: str, helo: str) -> SpfVerdict:
    """RFC 7208 §2.4: MAIL FROM's domain, or postmaster@HELO for the null sender."""
    scope = "mailfrom" if mail_from else "helo"
    sender = mail_from or f"postmaster@{helo}"
    domain = sender.rpartition("@")[2].lower()
    token = _current.set(lookup)
    try:
        query = spf.query(i=client, s=sender, h=helo or domain, timeout=lookup.timeout)
        result, _code, explanation = query.check()
    except Exception as exc:  # pyspf's own errors for input it cannot read
        result, explanation = "permerror", str(exc)
    finally:
        _current.reset(token)
    record = _spf_record(lookup, domain)
    reason = explanation or result
    looked = lookup.last(domain)
    if result == "none" and looked is not None and looked.outcome == "refused":
        reason = outside_hint(domain)
    return SpfVerdict(str(result), domain, client, record, str(reason), scope)


def _spf_record(lookup: StubLookup, domain: str) -> str | None:
    looked = lookup.last(domain)
    if looked is None:
        return None
    for value in looked.values:
        if value.lower().startswith("v=spf1"):
            return value
    return None
