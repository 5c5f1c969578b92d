"""The asyncio edge of authentication: what the SMTP handlers call.

``Authenticity`` is built by the runtime with the configuration, the key ring, the stub's
address and the chaos board. ``sign`` is for the submission server, ``screen`` for each
MX server; both return the message to store, the journey hop that explains what was
done, and (for ``screen``) a refusal or the folder the message belongs in.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

import dkim
import dns.resolver

from fake_dns import DnsFault
from sandbox.auth.check import CheckResult, check_message, from_domain, strip_own_results
from sandbox.auth.dkim import sign as dkim_sign
from sandbox.auth.dkim import signature_domains
from sandbox.auth.forwarder import forward
from sandbox.auth.keys import KeyRing
from sandbox.auth.lookup import DEFAULT_TIMEOUT, StubLookup
from sandbox.chaos import ChaosBoard
from sandbox.config import Config
from sandbox.store import Hop, Outcome, Step

log = logging.getLogger(__name__)

JUNK = "Junk"
# An address on loopback that no fake domain's SPF lists: where "auth-spf-outside" relays
# from (Linux routes all of 127.0.0.0/8 to loopback).
OUTSIDE_SPF_ADDRESS = "127.0.0.250"


@dataclass(frozen=True)
class Screened:
    """What a server does with a message after signing or checking it: ``prefix`` goes
    on top of ``content`` (the DKIM-Signature or Authentication-Results header)."""

    content: bytes
    prefix: bytes = b""
    hops: tuple[Hop, ...] = ()
    refusal: str | None = None  # an SMTP reply instead of 250
    folder: str | None = None  # None: where it would go anyway


def auth_dns_fault(mode: str | None) -> DnsFault | None:
    """The stub fault an authentication chaos mode needs, if it is a DNS one."""
    if mode == "auth-txt-timeout":
        return DnsFault("timeout", rdtype="TXT")
    if mode == "auth-no-key":
        return DnsFault("nxdomain", label="_domainkey")
    return None


class Authenticity:
    def __init__(
        self,
        config: Config,
        keys: KeyRing,
        dns_address: Callable[[], tuple[str, int]],
        chaos: ChaosBoard,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.config = config
        self.keys = keys
        self._dns_address = dns_address
        self.chaos = chaos
        self.timeout = timeout
        self._domains = {d.name: d for d in config.domains}
        self._real = {d.name for d in config.real_domains}
        self._cache = dns.resolver.Cache()
        self._outside: set[tuple[str, str]] = set()

    def forget_dns(self) -> None:
        """Drop cached answers (a chaos change alters what the stub says)."""
        self._cache.flush()
        self._outside.clear()

    def lookup(self) -> StubLookup:
        host, port = self._dns_address()
        return StubLookup(host, port, self.timeout, self._cache, self._outside)

    def relay_source(self, domain: str) -> str | None:
        """Where the relay connects from for mail to ``domain`` ("auth-spf-outside")."""
        return OUTSIDE_SPF_ADDRESS if self.chaos.auth(domain) == "auth-spf-outside" else None

    # --- submission ---------------------------------------------------------------

    async def submitted(self, content: bytes, client: str, helo: str, mail_from: str) -> Screened:
        """Sign mail from a fake domain; check mail from a real domain whose records are
        in the stub (``real_domains``), as its recipients' servers would: held mail never
        leaves, so the submission server reports what they would find."""
        domain = from_domain(content)
        if domain is None or (domain not in self._real and domain not in self._domains):
            return Screened(content)  # neither ours to sign nor a real domain we can check
        if domain not in self._real:
            return await asyncio.to_thread(self.sign, content)  # RSA signing takes a moment
        hostname = self.config.smtp.hostname
        content = strip_own_results(content, hostname)
        result = await self._check(content, client, helo, mail_from, hostname)
        if isinstance(result, Hop):
            return Screened(content, b"", (result,))
        detail = {"by": hostname, "as_receiver_of": "held mail", **result.hop_detail()}
        hop = Hop(Step.AUTHENTICATED, result.summary(), detail)
        return Screened(content, result.header, (hop,))

    def sign(self, content: bytes) -> Screened:
        """``sign_content`` as the submission server's screen."""
        headers, hop = self.sign_content(content)
        return Screened(content, headers, (hop,) if hop else ())

    def sign_content(self, content: bytes) -> tuple[bytes, Hop | None]:
        """DKIM-sign unsigned mail from a fake domain, as a provider's outbound server does.

        Mail that already carries a signature of its From domain keeps it untouched (an app
        that signs itself); a domain with ``sign = false`` is left to the app.
        """
        domain = from_domain(content)
        settings = self._domains.get(domain or "")
        if domain is None or settings is None:
            return b"", None
        auth = settings.auth
        if domain in (d.lower() for d in signature_domains(content)):
            return b"", Hop(
                Step.SIGNED, Outcome.KEPT, {"signer": domain, "reason": "already signed"}
            )
        if not auth.sign:
            reason = "signing is left to the app (auth.sign = false)"
            return b"", Hop(Step.SIGNED, Outcome.SKIPPED, {"signer": domain, "reason": reason})
        keys = self.keys.get(domain)
        if keys is None:
            return b"", None
        try:
            headers = dkim_sign(content, keys, auth.selector, auth.ed25519_selector)
        except dkim.DKIMException as exc:
            # A message dkimpy cannot sign (no From:, broken header) goes out unsigned, as
            # it would from a real provider; the journey says why.
            reason = f"could not sign: {exc}"
            return b"", Hop(Step.SIGNED, Outcome.FAILED, {"signer": domain, "reason": reason})
        signed = {
            "signer": domain,
            "selectors": [auth.ed25519_selector, auth.selector],
            "algorithms": ["ed25519-sha256", "rsa-sha256"],
        }
        return headers, Hop(Step.SIGNED, Outcome.SIGNED, signed)

    # --- receiving MX ---------------------------------------------------------------

    async def screen(
        self, domain: str, hostname: str, content: bytes, client: str, helo: str, mail_from: str
    ) -> Screened:
        """Check a message arriving at ``domain``'s MX; the verdicts go on top of it."""
        hops: list[Hop] = []
        if self.chaos.auth(domain) == "auth-forwarder":
            settings = self._domains[domain].auth
            content = await asyncio.to_thread(
                forward,
                content,
                domain=domain,
                keys=self.keys.get(domain),
                selector=settings.selector,
                client=client,
                helo=helo,
                mail_from=mail_from,
                lookup=self.lookup(),
            )
            detail = {
                "forwarder": f"lists.{domain}",
                "change": "a footer added to the body, then an ARC set (RFC 8617)",
            }
            hops.append(Hop(Step.FORWARDED, Outcome.BODY_ALTERED, detail))
        content = strip_own_results(content, hostname)
        result = await self._check(content, client, helo, mail_from, hostname)
        if isinstance(result, Hop):
            return Screened(content, b"", (*hops, result))
        hops.append(
            Hop(Step.AUTHENTICATED, result.summary(), {"by": hostname, **result.hop_detail()})
        )
        return self._apply_policy(result, content, hops)

    async def _check(
        self, content: bytes, client: str, helo: str, mail_from: str, authserv_id: str
    ) -> CheckResult | Hop:
        """The checks in a worker thread; a hop saying why when they could not run."""
        try:
            return await asyncio.to_thread(
                check_message,
                content,
                client=client,
                helo=helo,
                mail_from=mail_from,
                authserv_id=authserv_id,
                lookup=self.lookup(),
            )
        except Exception as exc:  # a library choking on odd input must not lose the mail
            log.exception("%s: authentication checks failed", authserv_id)
            detail = {"by": authserv_id, "reason": f"checks could not run: {exc}"}
            return Hop(Step.AUTHENTICATED, Outcome.ERROR, detail)

    def _apply_policy(self, result: CheckResult, content: bytes, hops: list[Hop]) -> Screened:
        """RFC 7489 §6.7: the receiver acts on the domain's disposition."""
        disposition = result.disposition
        domain = result.dmarc.domain
        if disposition == "reject":
            reply = (
                f"550 5.7.1 Rejected by the DMARC policy of {domain} (p=reject):"
                f" {result.dmarc.reason}; sign with an aligned DKIM key or send from an"
                " address its SPF lists"
            )
            return Screened(content, result.header, tuple(hops), refusal=reply)
        if disposition == "quarantine":
            reason = f"DMARC policy of {domain} is quarantine and the message failed"
            hops.append(Hop(Step.QUARANTINED, Outcome.JUNK, {"folder": JUNK, "reason": reason}))
            return Screened(content, result.header, tuple(hops), folder=JUNK)
        return Screened(content, result.header, tuple(hops))
