"""DKIM signing (RFC 6376, RFC 8463) and verification of every signature, with dkimpy.

dkimpy answers "valid or not"; which of RFC 8601's words applies is read from what the
lookup saw: no answer in time → temperror, no key or an unusable one → permerror
(RFC 6376 §6.1.2), a key that does not verify → fail with dkimpy's reason.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import dkim
from dkim.util import InvalidTagValueList, parse_tag_value

from sandbox.auth.keys import DomainKeys
from sandbox.auth.lookup import LookupTimeout, StubLookup, outside_hint

# RFC 6376 §5.4.1: the header fields a signature should cover when present.
SIGNED_HEADERS = [
    b"from", b"to", b"cc", b"subject", b"date", b"message-id", b"reply-to",
    b"mime-version", b"content-type", b"content-transfer-encoding", b"in-reply-to",
    b"references", b"list-unsubscribe", b"list-unsubscribe-post",
]  # fmt: skip


@dataclass(frozen=True)
class DkimVerdict:
    """One signature: ``result`` pass, fail, temperror, permerror or neutral."""

    result: str
    domain: str
    selector: str
    algorithm: str
    reason: str
    key_record: str | None = None

    @property
    def key_name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}"


def sign(raw: bytes, keys: DomainKeys, selector: str, ed25519_selector: str) -> bytes:
    """Both signature headers for ``raw`` (Ed25519 first, RSA second: RFC 8463 §6 asks
    signers to keep an RSA signature for verifiers that lack Ed25519)."""
    headers = [h for h in SIGNED_HEADERS if _has_header(raw, h)]
    rsa = dkim.sign(
        raw,
        selector.encode(),
        keys.domain.encode(),
        keys.rsa_pem,
        include_headers=headers,
        canonicalize=(b"relaxed", b"relaxed"),
    )
    ed = dkim.sign(
        raw,
        ed25519_selector.encode(),
        keys.domain.encode(),
        keys.ed25519_seed,
        include_headers=headers,
        canonicalize=(b"relaxed", b"relaxed"),
        signature_algorithm=b"ed25519-sha256",
    )
    return bytes(ed) + bytes(rsa)


def signature_domains(raw: bytes) -> list[str]:
    """The d= of every DKIM-Signature in the header."""
    return [tags.get("d", "") for tags in _signature_tags(raw)]


def verify_all(raw: bytes, lookup: StubLookup) -> list[DkimVerdict]:
    """A verdict per DKIM-Signature, top to bottom; [] when the message is unsigned."""
    verdicts = []
    for index, tags in enumerate(_signature_tags(raw)):
        verdicts.append(_verify_one(raw, index, tags, lookup))
    return verdicts


def dnsfunc_for(lookup: StubLookup) -> object:
    """dkimpy's ``dnsfunc``: the first TXT record at a name, None when there is none."""

    def dnsfunc(name: bytes | str, timeout: float = 5) -> bytes | None:
        text = name.decode() if isinstance(name, bytes) else name
        try:
            found = lookup.txt(text)
        except LookupTimeout as exc:
            raise dkim.DnsTimeoutError(str(exc)) from None
        return found[0] if found else None

    return dnsfunc


def _verify_one(raw: bytes, index: int, tags: dict[str, str], lookup: StubLookup) -> DkimVerdict:
    domain, selector = tags.get("d", "").lower(), tags.get("s", "").lower()
    algorithm = tags.get("a", "")
    if not domain or not selector:
        return DkimVerdict("permerror", domain, selector, algorithm, "signature lacks d= or s=")
    collected = _Collector()
    logger = logging.Logger("sandbox.auth.dkim")
    logger.addHandler(collected)
    checker = dkim.DKIM(raw, logger=logger, timeout=lookup.timeout)
    try:
        valid = checker.verify(index, dnsfunc=dnsfunc_for(lookup))
        problem = collected.last() or ("signature did not verify" if not valid else "")
    except dkim.ValidationError as exc:
        if "body hash mismatch" not in str(exc):
            # RFC 6376 §6.1.1: a signature that cannot be read is PERMFAIL.
            reason = f"malformed signature: {exc}"
            return DkimVerdict("permerror", domain, selector, algorithm, reason)
        valid, problem = False, str(exc)
    except dkim.DKIMException as exc:
        valid, problem = False, str(exc)
    key_name = f"{selector}._domainkey.{domain}"
    looked = lookup.last(key_name)
    record = looked.values[0] if looked and looked.values else None
    if valid:
        return DkimVerdict("pass", domain, selector, algorithm, "good signature", record)
    if looked is not None and looked.outcome == "timeout":
        return DkimVerdict(
            "temperror", domain, selector, algorithm, f"no answer for the key {key_name}"
        )
    if looked is not None and looked.outcome == "refused":
        return DkimVerdict("permerror", domain, selector, algorithm, outside_hint(domain))
    if looked is not None and not looked.values:
        return DkimVerdict(
            "permerror", domain, selector, algorithm, f"no key published at {key_name}"
        )
    if "KeyFormatError" in problem or "public key" in problem or "unknown algorithm" in problem:
        return DkimVerdict("permerror", domain, selector, algorithm, problem, record)
    return DkimVerdict("fail", domain, selector, algorithm, problem, record)


def _signature_tags(raw: bytes) -> list[dict[str, str]]:
    found = []
    try:
        checker = dkim.DKIM(raw)
    except dkim.DKIMException:  # a header dkimpy cannot parse holds no signature it can check
        return []
    for name, value in checker.headers:
        if name.lower() != b"dkim-signature":
            continue
        try:
            parsed = parse_tag_value(value)
        except InvalidTagValueList:
            parsed = {}
        found.append({k.decode(): v.decode("ascii", "replace") for k, v in parsed.items()})
    return found


def _has_header(raw: bytes, name: bytes) -> bool:
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    return any(
        line.split(b":", 1)[0].strip().lower() == name
        for line in head.splitlines()
        if line and line[:1] not in b" \t"
    )


class _Collector(logging.Handler):
    """dkimpy explains a failure only in its log; keep the last error line."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def last(self) -> str:
        return self.lines[-1] if self.lines else ""
