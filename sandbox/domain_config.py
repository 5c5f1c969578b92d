"""One fake domain's settings: its MX server address and what its DNS zone publishes.

Kept apart from ``config`` because a domain table has a shape of its own (lists of MX
hosts and extra records, fault settings) and its own checks, all reported as
``source: domains.NAME.KEY: problem``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any, NoReturn

from sandbox.auth.settings import DomainAuth, auth_table, parse_auth
from sandbox.chaos import DNS_FAULT_MODES, MX_MODES, ChaosError, DnsFaultSetting, MxFault

RECORD_TYPES = ("A", "AAAA", "MX", "TXT", "CNAME", "SRV", "PTR", "NS")
_HOST_RE = re.compile(
    r"^(?=.{1,253}\.?$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?\.)*[a-z0-9-]{1,63}\.?$"
)

Fail = Callable[[str, str], NoReturn]  # (key, problem) → raises ConfigError


@dataclass(frozen=True)
class MxRecord:
    """An MX record; ``addresses`` empty means the host's A record is the domain's MX server
    when the host is inside the domain, and absent otherwise."""

    host: str
    preference: int = 10
    addresses: tuple[str, ...] = ()


@dataclass(frozen=True)
class DnsRecord:
    """An extra record in zone-file text: ``DnsRecord("www", "CNAME", "@")``."""

    name: str
    type: str
    value: str
    ttl: int = 60


@dataclass(frozen=True)
class DomainConfig:
    """One fake domain: its MX server listens on ``mx_address``."""

    name: str
    mx_address: str
    mx: tuple[MxRecord, ...] | None = None  # None: one MX, mx.<name>; (): no MX (implicit MX)
    null_mx: bool = False  # RFC 7505: "this domain accepts no mail"
    aaaa: tuple[str, ...] = ()
    records: tuple[DnsRecord, ...] = ()
    dns_fault: DnsFaultSetting = field(default_factory=DnsFaultSetting)
    chaos: MxFault | None = None  # how its MX server misbehaves from the start
    auth: DomainAuth = field(default_factory=DomainAuth)  # SPF, DKIM, DMARC (sandbox.auth)

    @property
    def mx_host(self) -> str:
        """The name of the domain's own MX server (HELO, certificates, PTR)."""
        return f"mx.{self.name}"


@dataclass(frozen=True)
class RealDomain:
    """A real domain (not a sandbox one) whose records the stub serves, so that held mail
    from it gets SPF, DKIM and DMARC checked offline against the records you paste in."""

    name: str
    records: tuple[DnsRecord, ...] = ()


def parse_real_domain(name: str, settings: Any, fail: Fail) -> RealDomain:
    key = f"real_domains.{name}"
    if not isinstance(settings, dict) or set(settings) - {"records"}:
        fail(key, 'expected { records = [{ name = "@", type = "TXT", value = "v=spf1 …" }] }')
    records = tuple(
        _record(item, f"{key}.records[{i}]", fail)
        for i, item in enumerate(_list(settings.get("records", []), f"{key}.records", fail))
    )
    return RealDomain(name, records)


def real_domain_toml(domain: RealDomain, render: Callable[[Any], str]) -> list[str]:
    items = [
        {"name": r.name, "type": r.type, "value": r.value, "ttl": r.ttl} for r in domain.records
    ]
    return [f"[real_domains.{render(domain.name)}]", f"records = {render(items)}"]


_DOMAIN_KEYS = {"mx_address", "mx", "null_mx", "aaaa", "records", "dns_fault", "chaos", "auth"}


def parse_domain(
    name: str, settings: dict[str, Any], default_address: str, fail: Fail
) -> DomainConfig:
    """Check one ``[domains."NAME"]`` table; ``fail(key, problem)`` raises."""
    key = f"domains.{name}"
    for unknown in sorted(set(settings) - _DOMAIN_KEYS):
        fail(f"{key}.{unknown}", "unknown setting")
    address = _ip(settings.get("mx_address", default_address), f"{key}.mx_address", fail)
    mx: tuple[MxRecord, ...] | None = None
    if "mx" in settings:
        mx = tuple(
            _mx(item, f"{key}.mx[{i}]", fail)
            for i, item in enumerate(_list(settings["mx"], f"{key}.mx", fail))
        )
    null_mx = settings.get("null_mx", False)
    if not isinstance(null_mx, bool):
        fail(f"{key}.null_mx", "expected true or false")
    if null_mx and mx:
        fail(f"{key}.null_mx", "a null MX (RFC 7505) cannot be combined with mx records")
    aaaa = tuple(
        _ip(a, f"{key}.aaaa", fail, version=6)
        for a in _list(settings.get("aaaa", []), f"{key}.aaaa", fail)
    )
    records = tuple(
        _record(item, f"{key}.records[{i}]", fail)
        for i, item in enumerate(_list(settings.get("records", []), f"{key}.records", fail))
    )
    fault = _fault(settings.get("dns_fault", {}), f"{key}.dns_fault", fail)
    chaos = _chaos(settings["chaos"], f"{key}.chaos", fail) if "chaos" in settings else None
    auth = parse_auth(settings["auth"], f"{key}.auth", fail) if "auth" in settings else DomainAuth()
    return DomainConfig(name, address, mx, null_mx, aaaa, records, fault, chaos, auth)


def domain_toml(domain: DomainConfig, render: Callable[[Any], str]) -> list[str]:
    """The ``[domains."NAME"]`` table, loadable again by ``parse_domain``."""
    lines = [f"[domains.{render(domain.name)}]", f"mx_address = {render(domain.mx_address)}"]
    if domain.mx is not None:
        items = [
            {"host": m.host, "preference": m.preference, "addresses": list(m.addresses)}
            for m in domain.mx
        ]
        lines.append(f"mx = {render(items)}")
    if domain.null_mx:
        lines.append("null_mx = true")
    if domain.aaaa:
        lines.append(f"aaaa = {render(list(domain.aaaa))}")
    if domain.records:
        items = [
            {"name": r.name, "type": r.type, "value": r.value, "ttl": r.ttl} for r in domain.records
        ]
        lines.append(f"records = {render(items)}")
    if domain.chaos is not None:
        chaos = {k: v for k, v in asdict(domain.chaos).items() if v is not None}
        lines.append(f"chaos = {render(chaos)}")
    if domain.dns_fault.mode or domain.dns_fault.delay_ms:
        fault: dict[str, Any] = {"delay_ms": domain.dns_fault.delay_ms}
        if domain.dns_fault.mode:
            fault["mode"] = domain.dns_fault.mode
        lines.append(f"dns_fault = {render(fault)}")
    if not domain.auth.is_default():
        lines.append(f"auth = {render(auth_table(domain.auth))}")
    return lines


def _list(value: Any, key: str, fail: Fail) -> list[Any]:
    if not isinstance(value, list):
        fail(key, "expected a list")
    return value


def _table(value: Any, key: str, fail: Fail, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        fail(key, "expected a table like { " + ", ".join(sorted(allowed)) + " }")
    for unknown in sorted(set(value) - allowed):
        fail(f"{key}.{unknown}", "unknown setting")
    return value


def _ip(value: Any, key: str, fail: Fail, version: int | None = None) -> str:
    try:
        parsed = ipaddress.ip_address(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or (version is not None and parsed.version != version):
        fail(key, f"expected an IPv{version or '4 or IPv6'} address, got {value!r}")
    return str(parsed)


def _host(value: Any, key: str, fail: Fail) -> str:
    if not isinstance(value, str) or not _HOST_RE.match(value.lower()):
        fail(key, f"expected a host name like mx.alpha.test, got {value!r}")
    return value.lower().rstrip(".")


def _int(value: Any, key: str, fail: Fail, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        fail(key, f"expected a whole number from {low} to {high}, got {value!r}")
    return value


def _mx(item: Any, key: str, fail: Fail) -> MxRecord:
    table = _table(item, key, fail, {"host", "preference", "addresses"})
    if "host" not in table:
        fail(f"{key}.host", "missing: every MX record needs a host")
    addresses = tuple(
        _ip(a, f"{key}.addresses", fail)
        for a in _list(table.get("addresses", []), f"{key}.addresses", fail)
    )
    return MxRecord(
        _host(table["host"], f"{key}.host", fail),
        _int(table.get("preference", 10), f"{key}.preference", fail, 0, 65535),
        addresses,
    )


def _record(item: Any, key: str, fail: Fail) -> DnsRecord:
    table = _table(item, key, fail, {"name", "type", "value", "ttl"})
    for required in ("name", "type", "value"):
        if not isinstance(table.get(required), str):
            fail(f"{key}.{required}", "missing or not text")
    rdtype = table["type"].upper()
    if rdtype not in RECORD_TYPES:
        fail(f"{key}.type", f"expected one of {', '.join(RECORD_TYPES)}, got {table['type']!r}")
    return DnsRecord(
        table["name"],
        rdtype,
        table["value"],
        _int(table.get("ttl", 60), f"{key}.ttl", fail, 0, 2**31 - 1),
    )


def _fault(item: Any, key: str, fail: Fail) -> DnsFaultSetting:
    table = _table(item, key, fail, {"mode", "delay_ms"})
    mode = table.get("mode")
    if mode is not None and mode not in DNS_FAULT_MODES:
        fail(f"{key}.mode", f"expected one of {', '.join(DNS_FAULT_MODES)}, got {mode!r}")
    return DnsFaultSetting(
        mode, _int(table.get("delay_ms", 0), f"{key}.delay_ms", fail, 0, 600_000)
    )


def _chaos(item: Any, key: str, fail: Fail) -> MxFault:
    allowed = {f.name for f in fields(MxFault)}
    table = _table(item, key, fail, allowed)
    if "mode" not in table:
        fail(f"{key}.mode", f"missing: one of {', '.join(MX_MODES)}")
    try:
        return MxFault(**table)
    except (ChaosError, TypeError) as exc:
        fail(key, str(exc))
