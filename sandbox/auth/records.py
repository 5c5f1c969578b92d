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


def auth_records(auth: DomainAuth, keys: DomainKeys | None) -> tuple[ExtraRecord, ...]:
    records = []
    if keys is not None:
        records.append(ExtraRecord(f"{auth.selector}._domainkey", "TXT", keys.rsa_record()))
        records.append(
            ExtraRecord(f"{auth.ed25519_selector}._domainkey", "TXT", keys.ed25519_record())
        )
    for key in auth.keys:
        records.append(ExtraRecord(f"{key.selector}._domainkey", "TXT", key.record()))
    records.append(ExtraRecord("_dmarc", "TXT", auth.dmarc_record()))
    return tuple(records)
