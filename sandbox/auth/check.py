"""What a receiving MX checks, in order: SPF, every DKIM signature, ARC, then DMARC.

Synchronous and free of sockets except through the ``StubLookup`` it is given (run it in
a worker thread). Returns the ``Authentication-Results`` header to add, the journey hop
that explains each verdict (which record, which key, why), and the DMARC disposition.
"""

from __future__ import annotations

import email.utils
import re
from dataclasses import dataclass
from typing import Any

import authres
import authres.arc
import authres.dmarc
import dkim

from sandbox.auth.dkim import DkimVerdict, dnsfunc_for, verify_all
from sandbox.auth.dmarc import DmarcVerdict, check_dmarc
from sandbox.auth.lookup import StubLookup
from sandbox.auth.spf import SpfVerdict, check_spf
from sandbox.auth.verdicts import render

_FIELD_RE = re.compile(rb"^([!-9;-~]+):")


@dataclass(frozen=True)
class ArcVerdict:
    result: str  # pass, fail, none
    reason: str


@dataclass(frozen=True)
class CheckResult:
    spf: SpfVerdict
    dkim: tuple[DkimVerdict, ...]
    arc: ArcVerdict
    dmarc: DmarcVerdict
    header: bytes

    @property
    def disposition(self) -> str:
        """none, quarantine or reject: what the From domain's DMARC policy asks."""
        return self.dmarc.disposition if self.dmarc.result == "fail" else "none"

    def hop_detail(self) -> dict[str, Any]:
        """The journey's account: one entry per method, with the record or key used."""
        return {
            "spf": {
                "result": self.spf.result,
                "domain": self.spf.domain,
                "client": self.spf.client,
                "record": self.spf.record,
                "reason": self.spf.reason,
            },
            "dkim": [
                {
                    "result": v.result,
                    "domain": v.domain,
                    "selector": v.selector,
                    "algorithm": v.algorithm,
                    "key": v.key_name,
                    "key_record": _short(v.key_record, 60) if v.key_record else None,
                    "reason": v.reason,
                }
                for v in self.dkim
            ],
            "arc": {"result": self.arc.result, "reason": self.arc.reason},
            "dmarc": {
                "result": self.dmarc.result,
                "domain": self.dmarc.domain,
                "policy": self.dmarc.policy,
                "disposition": self.disposition,
                "record": self.dmarc.record,
                "reason": self.dmarc.reason,
            },
        }

    def summary(self) -> str:
        dkim_word = _dkim_word(self.dkim)
        return f"spf={self.spf.result} dkim={dkim_word} dmarc={self.dmarc.result}"


def check_message(
    raw: bytes, *, client: str, helo: str, mail_from: str, authserv_id: str, lookup: StubLookup
) -> CheckResult:
    """Every check of RFC 7208, 6376, 8617 and 7489 on ``raw`` as it arrived."""
    spf = check_spf(lookup, client, mail_from, helo)
    dkims = tuple(verify_all(raw, lookup))
    arc = _check_arc(raw, lookup)
    dmarc = check_dmarc(lookup, from_domain(raw), spf, list(dkims))
    header = render(authserv_id, _clauses(spf, dkims, arc, dmarc))
    return CheckResult(spf, dkims, arc, dmarc, header)


def strip_own_results(raw: bytes, authserv_id: str) -> bytes:
    """RFC 8601 §5: remove Authentication-Results that claim to be ours (forged upstream)."""
    head, sep, body = _split(raw)
    kept: list[bytes] = []
    dropping = False
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t"):
            if not dropping:
                kept.append(line)
            continue
        match = _FIELD_RE.match(line)
        name = match.group(1).lower() if match else b""
        value = line.split(b":", 1)[1].strip().split(b";", 1)[0] if match else b""
        dropping = name == b"authentication-results" and (
            value.strip().lower() == authserv_id.lower().encode()
        )
        if not dropping:
            kept.append(line)
    return b"".join(kept) + sep + body


def from_domain(raw: bytes) -> str | None:
    """RFC 7489 §6.6.1: the domain of the one From: address; None when not exactly one."""
    head = _split(raw)[0].decode("utf-8", "replace")
    values = re.findall(r"(?im)^from:((?:.*)(?:\r?\n[ \t].*)*)", head)
    if len(values) != 1:
        return None
    addresses = [a for _, a in email.utils.getaddresses([values[0]]) if "@" in a]
    if len(addresses) != 1:
        return None
    return addresses[0].rpartition("@")[2].lower().rstrip(">") or None


def _check_arc(raw: bytes, lookup: StubLookup) -> ArcVerdict:
    if not re.search(rb"(?im)^arc-seal:", _split(raw)[0]):
        return ArcVerdict("none", "no ARC set")
    try:
        cv, _results, reason = dkim.arc_verify(raw, dnsfunc=dnsfunc_for(lookup))
    except dkim.DKIMException as exc:
        return ArcVerdict("fail", str(exc))
    word = cv.decode() if isinstance(cv, bytes) else "fail"
    return ArcVerdict(word, str(reason))


def _dkim_word(dkims: tuple[DkimVerdict, ...]) -> str:
    if not dkims:
        return "none"
    results = [v.result for v in dkims]
    return "pass" if "pass" in results else results[0]


def _clauses(
    spf: SpfVerdict, dkims: tuple[DkimVerdict, ...], arc: ArcVerdict, dmarc: DmarcVerdict
) -> list[Any]:
    clauses: list[Any] = []
    spf_kwargs: dict[str, str] = (
        {"smtp_mailfrom": spf.domain} if spf.scope == "mailfrom" else {"smtp_helo": spf.domain}
    )
    clauses.append(
        authres.SPFAuthenticationResult(
            result=spf.result, result_comment=f"{spf.client} by {spf.domain}", **spf_kwargs
        )
        if spf.result == "pass"
        else authres.SPFAuthenticationResult(
            result=spf.result, reason=_short(spf.reason), **spf_kwargs
        )
    )
    if not dkims:
        clauses.append(authres.DKIMAuthenticationResult(result="none", reason="no signature"))
    for verdict in dkims:
        clauses.append(
            authres.DKIMAuthenticationResult(
                result=verdict.result,
                reason=None if verdict.result == "pass" else _short(verdict.reason),
                header_d=verdict.domain or None,
                header_s=verdict.selector or None,
                header_a=verdict.algorithm or None,
            )
        )
    clauses.append(
        authres.arc.ARCAuthenticationResult(
            result=arc.result, reason=None if arc.result in ("pass", "none") else arc.reason
        )
    )
    clauses.append(
        authres.dmarc.DMARCAuthenticationResult(
            result=dmarc.result,
            reason=None if dmarc.result == "pass" else _short(dmarc.reason),
            header_from=dmarc.domain or None,
            policy=dmarc.policy if dmarc.record else None,
        )
    )
    return clauses


def _short(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _split(raw: bytes) -> tuple[bytes, bytes, bytes]:
    """(header with its last line ending, the blank line, body)."""
    found = [(at, blank) for blank in (b"\r\n\r\n", b"\n\n") if (at := raw.find(blank)) >= 0]
    if not found:
        return raw, b"", b""
    at, blank = min(found)
    half = len(blank) // 2
    return raw[: at + half], raw[at + half : at + len(blank)], raw[at + len(blank) :]
