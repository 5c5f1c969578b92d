"""The verdicts as every reader sees them: read back from the ``Authentication-Results``
header the receiving MX added (RFC 8601), parsed with ``authres``.

One function for everyone (CLI ``show`` and ``--json``, the test API, the TUI, the HTTP
API): ``read_verdicts(raw)``. The header is the record because it travels with the
message: a mail client reading over IMAP sees the same words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import authres
import authres.arc
import authres.dmarc

FIELD = "Authentication-Results"
_FEATURES = authres.FeatureContext(authres.dmarc, authres.arc)
_AR_RE = re.compile(rb"^authentication-results:", re.IGNORECASE)


@dataclass(frozen=True)
class MethodResult:
    """One clause: ``dkim=fail reason="body hash mismatch" header.d=alpha.test``."""

    method: str
    result: str
    reason: str | None = None
    properties: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"method": self.method, "result": self.result, "reason": self.reason,
                **self.properties}  # fmt: skip


@dataclass(frozen=True)
class AuthVerdicts:
    """What the receiving MX ``authserv_id`` found: one word per method (RFC 8601 §2.7:
    pass, fail, softfail, neutral, none, temperror, permerror) and every clause.

    ``dkim`` is "pass" when any signature passed, else the first signature's result,
    "none" for an unsigned message.
    """

    authserv_id: str
    spf: str = "none"
    dkim: str = "none"
    dmarc: str = "none"
    arc: str = "none"
    results: tuple[MethodResult, ...] = ()

    @property
    def reasons(self) -> dict[str, str]:
        """Each method's first reason, for one-line displays."""
        found: dict[str, str] = {}
        for clause in self.results:
            if clause.reason and clause.method not in found:
                found[clause.method] = clause.reason
        return found

    def as_json(self) -> dict[str, Any]:
        return {
            "authserv_id": self.authserv_id,
            "spf": self.spf,
            "dkim": self.dkim,
            "dmarc": self.dmarc,
            "arc": self.arc,
            "results": [clause.as_json() for clause in self.results],
        }

    def lines(self) -> list[str]:
        """A few lines for a terminal: one per clause, with its reason."""
        out = []
        for clause in self.results:
            detail = " ".join(f"{k}={v}" for k, v in clause.properties.items())
            text = f"{clause.method:<5} {clause.result:<9} {detail}".rstrip()
            if clause.reason:
                text += f"  ({clause.reason})"
            out.append(text)
        return out or ["none: the receiving server checked nothing"]


def read_verdicts(raw: bytes) -> AuthVerdicts | None:
    """The verdicts of the topmost ``Authentication-Results`` (the last MX's), or None."""
    for value in _header_values(raw):
        try:
            header = _FEATURES.parse_value(value)
        except authres.AuthResError:
            continue
        return _verdicts(header)
    return None


def verdict_lines(raw: bytes) -> list[str]:
    """For terminals: "Authentication (by HOST):", a line per clause and a blank line;
    nothing when no MX checked the message."""
    verdicts = read_verdicts(raw)
    if verdicts is None:
        return []
    heading = f"Authentication (by {verdicts.authserv_id}):"
    return [heading, *("  " + line for line in verdicts.lines()), ""]


class _Quoted(authres.core.QuotableValue):  # type: ignore[misc]
    """A reason always written as a quoted-string: authres leaves any value holding "@"
    bare (right for user@domain, wrong for "not authorized: a@b"), which no parser reads."""

    def quote_if_needed(self) -> str:
        return f'"{self}"'


def render(authserv_id: str, clauses: list[authres.core.AuthenticationResult]) -> bytes:
    """The header line, folded at each clause (RFC 5322 §2.2.3), CRLF-terminated."""
    for clause in clauses:
        if clause.reason:
            # Quotes and backslashes become ' and /: authres reads quoted-pairs back as-is.
            text = str(clause.reason).replace("\\", "/").replace('"', "'")
            clause.reason = _Quoted(" ".join(text.split()))
    header = _FEATURES.header(authserv_id=authserv_id, results=clauses)
    parts = [authserv_id, *(str(clause) for clause in header.results)]
    if not header.results:
        parts.append("none")
    return (f"{FIELD}: " + ";\r\n\t".join(parts) + "\r\n").encode("utf-8", "replace")


def _verdicts(header: Any) -> AuthVerdicts:
    clauses = tuple(
        MethodResult(
            r.method,
            r.result,
            str(r.reason) if getattr(r, "reason", None) else None,
            {f"{p.type}.{p.name}": str(p.value) for p in r.properties},
        )
        for r in header.results
        if getattr(r, "method", None)
    )

    def word(method: str) -> str:
        found = [c.result for c in clauses if c.method == method]
        if not found:
            return "none"
        return "pass" if "pass" in found else found[0]

    return AuthVerdicts(
        authserv_id=str(header.authserv_id or ""),
        spf=word("spf"),
        dkim=word("dkim"),
        dmarc=word("dmarc"),
        arc=word("arc"),
        results=clauses,
    )


def _header_values(raw: bytes) -> list[str]:
    """Unfolded values of every Authentication-Results field, top first."""
    head = re.split(rb"\r?\n\r?\n", raw, maxsplit=1)[0]
    values: list[str] = []
    current: bytes | None = None
    for line in re.split(rb"\r?\n", head):
        if line[:1] in (b" ", b"\t") and current is not None:
            current += b" " + line.strip()
            continue
        if current is not None:
            values.append(current.decode("utf-8", "replace"))
            current = None
        if _AR_RE.match(line):
            current = line.split(b":", 1)[1].strip()
    if current is not None:
        values.append(current.decode("utf-8", "replace"))
    return values
