"""DMARC (RFC 7489): find the From domain's policy in the stub, judge alignment with ``dmarc``.

The ``dmarc`` package is sans-IO: it parses the record and applies the alignment rules;
the lookups are ours (RFC 7489 §6.6.3: ``_dmarc.<From domain>``, then the organizational
domain's). Without the public suffix list offline, the organizational domain is the last
two labels, which is exact for the sandbox's ``.test`` domains.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import dmarc as dmarclib

from sandbox.auth.dkim import DkimVerdict
from sandbox.auth.lookup import LookupTimeout, StubLookup, outside_hint
from sandbox.auth.spf import SpfVerdict


@dataclass(frozen=True)
class DmarcVerdict:
    """``result`` pass, fail, none, temperror or permerror; ``disposition`` what the
    receiver does: none, quarantine or reject (RFC 7489 §6.3 ``p=``)."""

    result: str
    domain: str
    policy: str
    disposition: str
    record: str | None
    reason: str


def check_dmarc(
    lookup: StubLookup, from_domain: str | None, spf: SpfVerdict, dkims: list[DkimVerdict]
) -> DmarcVerdict:
    if not from_domain:
        return DmarcVerdict("none", "", "none", "none", None, "no single From: domain to check")
    domain = from_domain.lower()
    try:
        record, org = _discover(lookup, domain)
    except LookupTimeout as exc:
        return DmarcVerdict("temperror", domain, "none", "none", None, str(exc))
    if record is None:
        looked = lookup.last(f"_dmarc.{domain}")
        reason = (
            outside_hint(domain)
            if looked is not None and looked.outcome == "refused"
            else f"no DMARC record for {domain}"
        )
        return DmarcVerdict("none", domain, "none", "none", None, reason)
    try:
        policy = dmarclib.DMARC().parse_record(record, domain, org_domain=org)
    except dmarclib.Error as exc:
        return DmarcVerdict("permerror", domain, "none", "none", record, f"bad record: {exc}")
    aspf = dmarclib.SPF(spf.domain, dmarclib.SPFResult(spf.result)) if spf.domain else None
    results = dmarclib.AuthResults(
        spf=aspf,
        dkim=[dmarclib.DKIM(v.domain, dmarclib.DKIMResult(v.result)) for v in dkims] or None,
    )
    outcome = dmarclib.DMARC().get_result(policy, auth_results=results)
    published = (policy.sp if org and policy.sp.value else policy.p).value or "none"
    if outcome.result is dmarclib.DMARCResult.PASS:
        aligned = [
            name for name, res in (("SPF", outcome.spf), ("DKIM", outcome.dkim))
            if res is dmarclib.DMARCResult.PASS
        ]  # fmt: skip
        reason = f"{' and '.join(aligned)} aligned with {domain}"
        return DmarcVerdict("pass", domain, published, "none", record, reason)
    disposition = outcome.disposition.value or "none"
    if policy.pct < 100 and random.random() * 100 >= policy.pct:
        # RFC 7489 §6.6.4: outside the sample, apply the next less strict policy.
        disposition = {"reject": "quarantine", "quarantine": "none"}.get(disposition, "none")
    reason = f"neither SPF ({spf.result}, {spf.domain}) nor any DKIM pass aligned with {domain}"
    return DmarcVerdict("fail", domain, published, disposition, record, reason)


def _discover(lookup: StubLookup, domain: str) -> tuple[str | None, str | None]:
    """The DMARC record text and, when found at the organizational domain, that domain."""
    found = _record(lookup, f"_dmarc.{domain}")
    if found is not None:
        return found, None
    org = ".".join(domain.split(".")[-2:])
    if org != domain:
        found = _record(lookup, f"_dmarc.{org}")
        if found is not None:
            return found, org
    return None, None


def _record(lookup: StubLookup, name: str) -> str | None:
    # RFC 7489 §6.6.3: records not starting with v=DMARC1 are ignored; more than one
    # leaves no policy.
    records = [t.decode("utf-8", "replace") for t in lookup.txt(name) if t.startswith(b"v=DMARC1")]
    return records[0] if len(records) == 1 else None
