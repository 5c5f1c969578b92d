"""Fault injection per domain: how a domain's MX server and DNS zone misbehave on purpose.

One setting per domain, from the TOML (``[domains."beta.test"] chaos = {…}``) or switched
at run time with ``mail-sandbox chaos``. The running sandbox reads the settings from the
store, so another process can switch them; ``ChaosBoard`` holds the current ones and the
state real faults need (greylisting's triplets, the rate limit's window).
"""

from __future__ import annotations

import random
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

DNS_FAULT_MODES = ("servfail", "timeout", "nxdomain")
MX_MODES = ("reject", "tempfail", "greylist", "delay", "disconnect", "ratelimit")
STAGES = ("connect", "ehlo", "mail", "rcpt", "data")
# Authentication faults (sandbox.auth). The first two break mail *to* the domain on its
# way in; the last two break the domain's own DNS, so mail *from* it fails the checks.
AUTH_MODES = ("auth-forwarder", "auth-spf-outside", "auth-txt-timeout", "auth-no-key")
AUTH_DESCRIPTIONS = {
    "auth-forwarder": "a forwarder alters the body of mail to it (DKIM body hash fails)",
    "auth-spf-outside": "mail to it is relayed from an address outside the sender's SPF",
    "auth-txt-timeout": "its TXT lookups time out (SPF, DKIM, DMARC: temperror)",
    "auth-no-key": "its DKIM keys are missing from DNS (dkim=permerror)",
}
DEFAULT_CODES = {"reject": 550, "tempfail": 451}


class ChaosError(ValueError):
    """A fault setting that makes no sense; the message says which part and why."""


@dataclass(frozen=True)
class DnsFaultSetting:
    mode: str | None = None  # servfail, timeout or nxdomain
    delay_ms: int = 0


@dataclass(frozen=True)
class MxFault:
    mode: str
    code: int | None = None  # reject (5xx) and tempfail (4xx)
    stage: str = "rcpt"  # where reject, tempfail and disconnect strike
    seconds: float = 1.0  # greylisting: how long a new triplet is turned away
    delay_ms: int = 0  # delay: before every reply
    per_minute: int = 10  # ratelimit: messages a minute before 421
    probability: float = 1.0  # of striking each time it could
    message: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in MX_MODES:
            raise ChaosError(f"unknown mode {self.mode!r}; use one of {', '.join(MX_MODES)}")
        if self.stage not in STAGES:
            raise ChaosError(f"unknown stage {self.stage!r}; use one of {', '.join(STAGES)}")
        if not 0.0 <= self.probability <= 1.0:
            raise ChaosError(f"probability must be from 0 to 1, got {self.probability}")
        if self.mode == "reject" and self.code is not None and not 500 <= self.code <= 599:
            raise ChaosError(f"reject needs a 5xx code, got {self.code}")
        if self.mode == "tempfail" and self.code is not None and not 400 <= self.code <= 499:
            raise ChaosError(f"tempfail needs a 4xx code, got {self.code}")
        if self.seconds < 0 or self.delay_ms < 0 or self.per_minute < 1:
            raise ChaosError("seconds and ms must be 0 or more, per-minute at least 1")

    def describe(self) -> str:
        words = {
            "reject": f"reject with {self.reply_code()} at {self.stage}",
            "tempfail": f"temp-fail with {self.reply_code()} at {self.stage}",
            "greylist": f"greylist new sender/recipient/client triplets for {self.seconds:g}s",
            "delay": f"delay every reply by {self.delay_ms} ms",
            "disconnect": f"disconnect at {self.stage}",
            "ratelimit": f"421 after {self.per_minute} messages a minute",
        }[self.mode]
        if self.probability < 1.0:
            words += f", with probability {self.probability:g}"
        return words

    def reply_code(self) -> int:
        return self.code or DEFAULT_CODES.get(self.mode, 451)


@dataclass(frozen=True)
class DomainChaos:
    mx: MxFault | None = None
    dns: DnsFaultSetting | None = None
    auth: str | None = None  # one of AUTH_MODES

    def __post_init__(self) -> None:
        if self.auth is not None and self.auth not in AUTH_MODES:
            raise ChaosError(f"unknown mode {self.auth!r}; use one of {', '.join(AUTH_MODES)}")

    @property
    def active(self) -> bool:
        return self.mx is not None or self.dns is not None or self.auth is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "mx": asdict(self.mx) if self.mx else None,
            "dns": asdict(self.dns) if self.dns else None,
            "auth": self.auth,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DomainChaos:
        mx = MxFault(**data["mx"]) if data.get("mx") else None
        dns = DnsFaultSetting(**data["dns"]) if data.get("dns") else None
        return cls(mx, dns, data.get("auth"))

    def describe(self) -> str:
        parts = []
        if self.mx:
            parts.append("MX: " + self.mx.describe())
        if self.dns:
            dns = self.dns
            text = dns.mode or ""
            if dns.delay_ms:
                text = (text + " + " if text else "") + f"delay {dns.delay_ms} ms"
            parts.append("DNS: " + text)
        if self.auth:
            parts.append("auth: " + AUTH_DESCRIPTIONS[self.auth])
        return "; ".join(parts) or "off"


def dns_fault(mode: str, delay_ms: int = 0) -> DnsFaultSetting:
    """``dns-servfail`` → servfail, … ``dns-delay`` → only a delay."""
    name = mode.removeprefix("dns-")
    if name == "delay":
        if delay_ms <= 0:
            raise ChaosError("dns-delay needs --ms with a delay above 0")
        return DnsFaultSetting(None, delay_ms)
    if name not in DNS_FAULT_MODES:
        raise ChaosError(f"unknown DNS fault {mode!r}")
    return DnsFaultSetting(name, delay_ms)


@dataclass
class _DomainState:
    greylist: dict[tuple[str, str, str], float] = field(default_factory=dict)
    accepted: deque[float] = field(default_factory=deque)


class ChaosBoard:
    """The faults in force, and the state that makes them behave like the real thing."""

    def __init__(self) -> None:
        self._settings: dict[str, DomainChaos] = {}
        self._state: dict[str, _DomainState] = {}

    def set(self, domain: str, chaos: DomainChaos) -> None:
        if chaos.active:
            self._settings[domain] = chaos
        else:
            self._settings.pop(domain, None)
        self._state.pop(domain, None)

    def settings(self) -> dict[str, DomainChaos]:
        return dict(self._settings)

    def mx(self, domain: str) -> MxFault | None:
        chaos = self._settings.get(domain)
        return chaos.mx if chaos else None

    def auth(self, domain: str) -> str | None:
        """The authentication fault of a domain (``AUTH_MODES``), if any."""
        chaos = self._settings.get(domain)
        return chaos.auth if chaos else None

    def strikes(self, fault: MxFault) -> bool:
        return fault.probability >= 1.0 or random.random() < fault.probability

    def greylisted(self, domain: str, sender: str, rcpt: str, client: str, fault: MxFault) -> float:
        """Seconds still to wait for this triplet (0: let it through)."""
        state = self._state.setdefault(domain, _DomainState())
        key = (sender.lower(), rcpt.lower(), client)
        now = time.monotonic()
        first = state.greylist.setdefault(key, now)
        remaining = fault.seconds - (now - first)
        return remaining if remaining > 0 else 0.0

    def over_rate(self, domain: str, fault: MxFault) -> bool:
        """True when ``per_minute`` messages were already accepted in the last minute."""
        state = self._state.setdefault(domain, _DomainState())
        now = time.monotonic()
        while state.accepted and now - state.accepted[0] > 60.0:
            state.accepted.popleft()
        return len(state.accepted) >= fault.per_minute

    def accepted(self, domain: str) -> None:
        self._state.setdefault(domain, _DomainState()).accepted.append(time.monotonic())
