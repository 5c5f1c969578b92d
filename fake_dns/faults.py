"""Per-domain fault injection: how a fake domain's DNS misbehaves, for resilience tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

FaultMode = Literal["servfail", "timeout", "nxdomain"]

FAULT_MODES: tuple[FaultMode, ...] = ("servfail", "timeout", "nxdomain")


@dataclass(frozen=True)
class DnsFault:
    """How the stub misbehaves for every name of one domain.

    ``mode``: ``"servfail"`` answers SERVFAIL, ``"timeout"`` sends no answer at all (the
    client's timeout is what gets tested), ``"nxdomain"`` answers NXDOMAIN for every name.
    ``delay_ms`` holds the answer back that long (scheduled, never blocking the server).
    Both may be combined; the default instance is "no fault".

    ``rdtype`` limits the fault to queries of one type ("TXT": only the SPF, DKIM and
    DMARC lookups break); ``label`` to names holding that label ("_domainkey": only the
    DKIM keys go missing). Empty means every query of the domain.
    """

    mode: FaultMode | None = None
    delay_ms: int = 0
    rdtype: str = ""
    label: str = ""

    def __post_init__(self) -> None:
        if self.mode is not None and self.mode not in FAULT_MODES:
            raise ValueError(f"unknown DNS fault mode {self.mode!r}; expected one of {FAULT_MODES}")
        if self.delay_ms < 0:
            raise ValueError(f"delay_ms must be >= 0, got {self.delay_ms}")

    @property
    def active(self) -> bool:
        """True when this fault changes anything (so the fast path can skip it)."""
        return self.mode is not None or self.delay_ms > 0

    def describe(self) -> str | None:
        """Short text for logs: ``"timeout"``, ``"delay 200ms"``, ``"servfail+delay 50ms"``."""
        parts: list[str] = []
        if self.mode is not None:
            parts.append(self.mode)
        if self.delay_ms:
            parts.append(f"delay {self.delay_ms}ms")
        text = "+".join(parts)
        if text and (self.rdtype or self.label):
            scope = " ".join(part for part in (self.rdtype.upper(), self.label) if part)
            text += f" ({scope} only)"
        return text or None

    def applies(self, qname: str, qtype: str) -> bool:
        """Whether this fault strikes a query (name in text, type as "TXT")."""
        if self.rdtype and qtype.upper() != self.rdtype.upper():
            return False
        if self.label:
            labels = qname.lower().rstrip(".").split(".")
            return self.label.lower() in labels
        return True


#: "No fault": the default of ``DomainSpec.fault``.
NO_FAULT = DnsFault()
