"""The TXT records a fake domain publishes for authentication (the SPF record is built by
the stub itself from the domain's addresses plus ``spf_extra``).

- ``<selector>._domainkey``: the sandbox's RSA key (RFC 6376 §3.6.1)
- ``<selector>-ed25519._domainkey``: its Ed25519 key (RFC 8463 §4)
- ``<app selector>._domainkey``: each key of an app that signs itself
- ``_dmarc``: the policy (RFC 7489 §6.3)
"""

from __future__ import annotations

from fake_dns.zone import ExtraRecord
from sandbox.auth.keys import DomainKeys
from sandbox.auth.settings import DomainAuth


def auth_records(
    domain: str,
    auth: DomainAuth,
    keys: DomainKeys | None,
    own: tuple[ExtraRecord, ...] = (),
) -> tuple[ExtraRecord, ...]:
    """The generated records, less any TXT name the domain's own ``records`` already fill
    (a ``_dmarc`` record of your own replaces the default policy instead of doubling it,
    which RFC 7489 §6.6.3 would read as no policy at all)."""
    taken = {_relative(r.name, domain) for r in own if r.rdtype.upper() == "TXT"}
    records = []
    if keys is not None:
        records.append(ExtraRecord(f"{auth.selector}._domainkey", "TXT", keys.rsa_record))
        records.append(
            ExtraRecord(f"{auth.ed25519_selector}._domainkey", "TXT", keys.ed25519_record)
        )
    for key in auth.keys:
        records.append(ExtraRecord(f"{key.selector}._domainkey", "TXT", key.record()))
    records.append(ExtraRecord("_dmarc", "TXT", auth.dmarc_record()))
    return tuple(r for r in records if _relative(r.name, domain) not in taken)


def publishes_own_spf(domain: str, own: tuple[ExtraRecord, ...]) -> bool:
    """True when the domain's own records hold its SPF record (RFC 7208 §4.5: two would
    be a permerror), so the generated one is left out."""
    return any(
        r.rdtype.upper() == "TXT"
        and _relative(r.name, domain) == "@"
        and r.value.strip('"').lower().startswith("v=spf1")
        for r in own
    )


def _relative(name: str, domain: str) -> str:
    text = name.lower().rstrip(".")
    if text in ("@", "", domain):
        return "@"
    return text.removesuffix("." + domain)
