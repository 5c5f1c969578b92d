"""Chaos "auth-forwarder": a mailing-list style forwarder in front of a domain's MX.

What a well-behaved list does (RFC 8617 §5.1): it checks the message as it arrives,
changes it (a footer), then adds an ARC set over the changed message, so the next
receiver sees DKIM fail but can trust the chain's record that it passed before.
The forwarder belongs to the receiving domain and seals with that domain's RSA key.
"""

from __future__ import annotations

import dkim

from sandbox.auth.check import check_message
from sandbox.auth.keys import DomainKeys
from sandbox.auth.lookup import StubLookup

FOOTER = b"\r\n-- \r\nForwarded by the list at %s (mail-sandbox chaos)\r\n"


def forward(
    content: bytes,
    *,
    domain: str,
    keys: DomainKeys | None,
    selector: str,
    client: str,
    helo: str,
    mail_from: str,
    lookup: StubLookup,
) -> bytes:
    """The message as the forwarder passes it on: footer added, then ARC-sealed."""
    authserv_id = f"lists.{domain}"
    checked = check_message(
        content,
        client=client,
        helo=helo,
        mail_from=mail_from,
        authserv_id=authserv_id,
        lookup=lookup,
    )
    altered = checked.header + content.rstrip(b"\r\n") + FOOTER % domain.encode()
    if keys is None:
        return altered
    try:
        seal = dkim.arc_sign(
            altered, selector.encode(), domain.encode(), keys.rsa_pem, authserv_id.encode()
        )
    except dkim.DKIMException:
        return altered  # passed on unsealed, as a list without ARC does
    return b"".join(seal) + altered
