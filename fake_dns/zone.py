"""Zone data for the fake domains, built once so that answering a query is a dict lookup.

Pure: no sockets, no asyncio. ``build_zones`` turns ``DomainSpec``s into a ``Zones`` that
holds, for every (owner name, type), a prebuilt ``Answer`` (rrsets and a log summary), and
per zone the negative answers (NODATA and NXDOMAIN, each with the SOA in authority).

Names are keyed by their lowercased wire labels: DNS names compare case-insensitively
(RFC 4343 §3), and lowercasing labels is cheaper than dnspython's ``Name.__hash__``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import dns.exception
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.reversename
import dns.rrset

from fake_dns.faults import NO_FAULT, DnsFault

# Owner-name key: the name's labels, lowercased, root label (b"") last.
Key = tuple[bytes, ...]

#: Types accepted in ``ExtraRecord``; SOA is generated, everything else is out of scope.
EXTRA_TYPES = frozenset({"A", "AAAA", "MX", "TXT", "CNAME", "SRV", "PTR", "NS"})
#: Reverse zones served next to the fake domains, so PTR lookups never leave the stub.
REVERSE_ZONES = ("in-addr.arpa", "ip6.arpa")
#: Longest CNAME chain followed before giving up (loops stop earlier).
MAX_CNAME_CHAIN = 16
#: Summaries longer than this are cut, they only feed a log line.
SUMMARY_LIMIT = 160
#: SOA timers (RFC 1035 §3.3.13); the last one is the negative-caching TTL (RFC 2308 §5),
#: which ``build_zones`` replaces with its ``ttl``.
SOA_TIMERS = "1 3600 600 86400"

_IN = dns.rdataclass.IN


@dataclass(frozen=True)
class MxHost:
    """One MX target: its (absolute) host name, preference and addresses.

    An address where nothing listens is allowed: that is how fallback to the next MX is
    tested. An empty ``addresses`` publishes the MX with no address record at all.
    """

    name: str
    preference: int
    addresses: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExtraRecord:
    """A record added verbatim, for scenarios the generated records do not cover.

    ``name`` is relative to the domain ("www", "@") or absolute with a trailing dot.
    ``value`` is zone-file text ("10 mx2.alpha.test.", "v=spf1 -all"); a TXT value that is
    not quoted is one string, split into 255-byte chunks (RFC 7208 §3.3).
    """

    name: str
    rdtype: str
    value: str
    ttl: int = 60


@dataclass(frozen=True)
class DomainSpec:
    """One fake domain: where its MX server listens and what its zone publishes.

    ``mx``: ``None`` publishes one MX ``mx.<name>`` preference 10 at ``address``; ``()``
    publishes none (senders fall back to the apex A, RFC 5321 §5.1); a tuple publishes those
    hosts. ``null_mx`` publishes the RFC 7505 "0 ." MX (the domain accepts no mail).
    ``spf_terms`` go into the generated SPF record before its ``-all``; ``spf=False``
    publishes none (for a domain whose own SPF record is among ``extra``).
    ``records_only`` publishes ``extra`` and nothing generated (a copy of a real domain's
    records; ``address`` is then unused).
    """

    name: str
    address: str
    mx_port: int = 25
    mx: tuple[MxHost, ...] | None = None
    null_mx: bool = False
    aaaa: tuple[str, ...] = ()
    extra: tuple[ExtraRecord, ...] = ()
    fault: DnsFault = NO_FAULT
    spf: bool = True
    spf_terms: tuple[str, ...] = ()
    records_only: bool = False


@dataclass(frozen=True)
class Answer:
    """What the zones say about one (name, type): the sections and the rcode.

    ``zone`` is the zone the name belongs to (a domain name such as "alpha.test", or a
    reverse zone), ``None`` when outside every zone. ``summary`` is a short text of the
    answer section for logs ("MX 10 mx.beta.test.").
    """

    rcode: dns.rcode.Rcode
    answer: tuple[dns.rrset.RRset, ...] = ()
    authority: tuple[dns.rrset.RRset, ...] = ()
    zone: str | None = None
    summary: str = ""


REFUSED = Answer(dns.rcode.REFUSED)


def name_key(name: dns.name.Name) -> Key:
    """The case-insensitive dictionary key of a name (RFC 4343 §3)."""
    return tuple([label.lower() for label in name.labels])


def summarize(rrsets: Iterable[dns.rrset.RRset]) -> str:
    """One short line for a log: "MX 10 mx.beta.test., A 127.0.0.12"."""
    parts = [
        f"{dns.rdatatype.to_text(rrset.rdtype)} {rdata.to_text()}"
        for rrset in rrsets
        for rdata in rrset
    ]
    text = ", ".join(parts)
    if len(text) > SUMMARY_LIMIT:
        text = text[: SUMMARY_LIMIT - 1] + "…"
    return text


@dataclass
class _Zone:
    """One zone's prebuilt answers. Mutable only while ``build_zones`` fills it."""

    name: str
    origin: dns.name.Name
    key: Key
    rdatas: dict[tuple[Key, int], tuple[dns.name.Name, list[tuple[dns.rdata.Rdata, int]]]] = field(
        default_factory=dict
    )
    answers: dict[tuple[Key, int], Answer] = field(default_factory=dict)
    any_answers: dict[Key, Answer] = field(default_factory=dict)
    names: set[Key] = field(default_factory=set)
    nodata: Answer = REFUSED
    nxdomain: Answer = REFUSED


class Zones:
    """Every zone the stub serves (the fake domains and the reverse zones), read-only.

    Build with ``build_zones``. ``lookup`` is the whole query-time logic.
    ANY queries get every rrset at the name: RFC 8482 allows a minimal answer, but a local
    stub is more useful showing everything (large sets get TC over UDP like any other).
    """

    def __init__(self, zones: Sequence[_Zone], domains: Sequence[DomainSpec]) -> None:
        # Deepest zones first, so that a zone nested in another wins.
        self._zones = sorted(zones, key=lambda zone: len(zone.key), reverse=True)
        self._domains = tuple(domains)

    @property
    def domains(self) -> tuple[DomainSpec, ...]:
        """The specs the zones were built from, in order."""
        return self._domains

    @property
    def zone_names(self) -> tuple[str, ...]:
        """Every served zone ("alpha.test", ..., "in-addr.arpa", "ip6.arpa")."""
        return tuple(zone.name for zone in self._zones)

    @property
    def faults(self) -> dict[str, DnsFault]:
        """Build-time faults by domain name (only domains with an active fault)."""
        return {
            spec.name.lower().rstrip("."): spec.fault for spec in self._domains if spec.fault.active
        }

    def rrsets(self) -> list[dns.rrset.RRset]:
        """Every rrset served, zone by zone (for display and tests)."""
        return [
            rrset for zone in self._zones for ans in zone.answers.values() for rrset in ans.answer
        ]

    def zone_of(self, qname: dns.name.Name) -> str | None:
        """The zone a name belongs to, ``None`` outside every zone."""
        zone = self._find(name_key(qname))
        return None if zone is None else zone.name

    def nxdomain(self, zone: str) -> Answer:
        """The zone's NXDOMAIN answer (SOA in authority), for the "nxdomain" fault."""
        for candidate in self._zones:
            if candidate.name == zone:
                return candidate.nxdomain
        raise KeyError(zone)

    def _find(self, key: Key) -> _Zone | None:
        for zone in self._zones:
            if key[-len(zone.key) :] == zone.key:
                return zone
        return None

    def lookup(self, qname: dns.name.Name, rdtype: int) -> Answer:
        """Answer one question the way an authoritative server does (RFC 1034 §4.3.2)."""
        key = name_key(qname)
        zone = self._find(key)
        if zone is None:
            # Not authoritative and never recursive: refuse (RFC 1035 §4.1.1).
            return REFUSED
        hit = zone.answers.get((key, rdtype))
        if hit is not None:
            return hit
        if rdtype == dns.rdatatype.ANY:
            return zone.any_answers.get(key) or self._negative(zone, key)
        if (key, dns.rdatatype.CNAME) in zone.answers:
            return self._follow(zone, key, rdtype)
        return self._negative(zone, key)

    @staticmethod
    def _negative(zone: _Zone, key: Key) -> Answer:
        # A name that owns records, or is an ancestor of one that does (an empty
        # non-terminal), exists: NODATA. Anything else is NXDOMAIN. RFC 8020 §2, RFC 2308 §2.
        return zone.nodata if key in zone.names else zone.nxdomain

    def _follow(self, zone: _Zone, key: Key, rdtype: int) -> Answer:
        """Chase a CNAME chain through the served zones (RFC 1034 §3.6.2, §4.3.2 step 3a).

        The rcode is the one of the last name in the chain (RFC 6604 §2). A loop or a target
        outside the zones ends the chain with what was collected.
        """
        first_zone = zone.name
        chain: list[dns.rrset.RRset] = []
        seen: set[Key] = set()
        current: _Zone | None = zone
        while current is not None and key not in seen and len(chain) < MAX_CNAME_CHAIN:
            seen.add(key)
            hit = current.answers.get((key, rdtype))
            if hit is not None:
                chain.extend(hit.answer)
                return _make_answer(dns.rcode.NOERROR, chain, (), first_zone)
            cname = current.answers.get((key, dns.rdatatype.CNAME))
            if cname is None:
                negative = self._negative(current, key)
                return _make_answer(negative.rcode, chain, negative.authority, first_zone)
            rrset = cname.answer[0]
            chain.append(rrset)
            key = name_key(rrset[0].target)
            current = self._find(key)
        return _make_answer(dns.rcode.NOERROR, chain, (), first_zone)


def _make_answer(
    rcode: dns.rcode.Rcode,
    answer: Sequence[dns.rrset.RRset],
    authority: Sequence[dns.rrset.RRset],
    zone: str,
) -> Answer:
    return Answer(rcode, tuple(answer), tuple(authority), zone, summarize(answer))


def _absolute(text: str) -> dns.name.Name:
    """A name given as text, absolute whether or not it ends with a dot, lowercased."""
    return dns.name.from_text(text.lower())


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"not an IP address: {text!r}") from None


def _address_rdata(text: str) -> tuple[int, dns.rdata.Rdata]:
    address = _address(text)
    rdtype = dns.rdatatype.A if address.version == 4 else dns.rdatatype.AAAA
    return rdtype, dns.rdata.from_text(_IN, rdtype, str(address))


def _txt(value: str) -> dns.rdata.Rdata:
    if value.lstrip().startswith('"'):
        return dns.rdata.from_text(_IN, dns.rdatatype.TXT, value)
    # Unquoted: one string, chunked at 255 bytes (RFC 1035 §3.3.14, RFC 7208 §3.3).
    raw = value.encode()
    chunks = [raw[i : i + 255] for i in range(0, len(raw), 255)] or [b""]
    return dns.rdtypes.ANY.TXT.TXT(_IN, dns.rdatatype.TXT, chunks)


class _Builder:
    """Collects records into zones, checking each owner lies inside a served zone."""

    def __init__(self, origins: Sequence[tuple[str, dns.name.Name]]) -> None:
        self.zones = [_Zone(name, origin, name_key(origin)) for name, origin in origins]
        self._by_depth = sorted(self.zones, key=lambda zone: len(zone.key), reverse=True)

    def zone_for(self, name: dns.name.Name) -> _Zone | None:
        key = name_key(name)
        for zone in self._by_depth:
            if key[-len(zone.key) :] == zone.key:
                return zone
        return None

    def has_owner(self, owner: dns.name.Name) -> bool:
        """Whether some record is already published at ``owner`` (an extra record, say)."""
        zone = self.zone_for(owner)
        key = name_key(owner)
        return zone is not None and any(k == key for k, _ in zone.rdatas)

    def add(self, owner: dns.name.Name, rdata: dns.rdata.Rdata, ttl: int) -> None:
        zone = self.zone_for(owner)
        if zone is None:
            raise ValueError(f"{owner} is outside every served zone")
        key = (name_key(owner), rdata.rdtype)
        entry = zone.rdatas.setdefault(key, (owner, []))
        if all(existing != rdata for existing, _ in entry[1]):
            entry[1].append((rdata, ttl))

    def finish(
        self, authority: Mapping[str, tuple[dns.name.Name, dns.name.Name]], ttl: int
    ) -> list[_Zone]:
        """Add each zone's SOA and NS from ``authority``: zone → (name server, hostmaster)."""
        for zone in self.zones:
            ns_name, hostmaster = authority[zone.name]
            soa = f"{ns_name} {hostmaster} {SOA_TIMERS} {ttl}"
            self.add(zone.origin, dns.rdata.from_text(_IN, dns.rdatatype.SOA, soa), ttl)
            self.add(zone.origin, dns.rdata.from_text(_IN, dns.rdatatype.NS, str(ns_name)), ttl)
        for zone in self.zones:
            self._finish_zone(zone)
        return self.zones

    @staticmethod
    def _finish_zone(zone: _Zone) -> None:
        by_name: dict[Key, list[dns.rrset.RRset]] = {}
        for (key, rdtype), (owner, rdatas) in sorted(zone.rdatas.items()):
            rrset = dns.rrset.RRset(owner, _IN, dns.rdatatype.RdataType.make(rdtype))
            for rdata, rdata_ttl in rdatas:
                rrset.add(rdata, rdata_ttl)  # the rrset keeps the lowest TTL (RFC 2181 §5.2)
            zone.answers[key, rdtype] = _make_answer(dns.rcode.NOERROR, [rrset], (), zone.name)
            by_name.setdefault(key, []).append(rrset)
            # The owner and every ancestor up to the apex exist (empty non-terminals).
            for cut in range(len(zone.key), len(key) + 1):
                zone.names.add(key[-cut:])
        for key, rrsets in by_name.items():
            types = {rrset.rdtype for rrset in rrsets}
            if dns.rdatatype.CNAME in types and len(types) > 1:
                # RFC 1034 §3.6.2, RFC 2181 §10.1: a CNAME owner has no other data.
                raise ValueError(f"{rrsets[0].name} has a CNAME and other records")
            zone.any_answers[key] = _make_answer(dns.rcode.NOERROR, rrsets, (), zone.name)
        soa = zone.answers[zone.key, dns.rdatatype.SOA].answer
        # RFC 2308 §3: negative answers carry the zone's SOA in the authority section.
        zone.nodata = Answer(dns.rcode.NOERROR, (), soa, zone.name, "")
        zone.nxdomain = Answer(dns.rcode.NXDOMAIN, (), soa, zone.name, "")
        zone.rdatas.clear()


def build_zones(
    domains: Sequence[DomainSpec],
    *,
    common_mx_port: int,
    ptr: Mapping[str, str] | None = None,
    ns_name: str | None = None,
    ns_address: str = "127.0.0.1",
    ttl: int = 60,
) -> Zones:
    """Build every zone once: SOA, NS, MX, A/AAAA, SPF TXT, SRV, PTR and extra records.

    ``common_mx_port`` is the port every MX server is expected on; a domain whose
    ``mx_port`` differs also gets ``_smtp._tcp.<domain>`` SRV records carrying its port.
    ``ptr`` adds reverse records (address -> name) and wins over generated ones.
    Each domain's zone names ``ns.<domain>`` as its NS and SOA MNAME, and publishes that
    host at ``ns_address`` (where the stub listens), so a resolver that follows the NS
    record finds the server in the zone itself (RFC 1034 §4.2.1); the reverse zones use the
    first domain's. ``ns_name`` instead names one server for every zone (its address is
    published when it lies in a served zone). Raises ``ValueError`` on anything inconsistent.
    """
    try:
        return _build(domains, common_mx_port, ptr or {}, ns_name, ns_address, ttl)
    except dns.exception.DNSException as exc:  # bad names or record values
        raise ValueError(f"invalid zone data: {exc}") from exc


def _build(
    domains: Sequence[DomainSpec],
    common_mx_port: int,
    ptr: Mapping[str, str],
    ns_name: str | None,
    ns_address: str,
    ttl: int,
) -> Zones:
    names = [spec.name.lower().rstrip(".") for spec in domains]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate domain in {names}")
    if ttl < 0:
        raise ValueError(f"ttl must be >= 0, got {ttl}")
    origins = [(name, _absolute(name)) for name in names]
    for name, origin in origins:
        if len(origin) < 2:
            raise ValueError(f"not a domain name: {name!r}")
    builder = _Builder([*origins, *((zone, _absolute(zone)) for zone in REVERSE_ZONES)])
    first = names[0] if names else "localhost"
    authority = {
        zone: (
            _absolute(ns_name or f"ns.{zone}"),
            _absolute(f"hostmaster.{zone}"),
        )
        for zone in names
    }
    for zone in REVERSE_ZONES:
        authority[zone] = (
            _absolute(ns_name or (f"ns.{first}" if names else first)),
            _absolute(f"hostmaster.{first}"),
        )

    reverse: dict[str, dns.name.Name] = {}
    for spec, (_, origin) in zip(domains, origins, strict=True):
        for address, target in _add_domain(builder, spec, origin, common_mx_port, ttl):
            reverse.setdefault(address, target)
    for address, target_text in ptr.items():
        reverse[str(_address(address))] = _absolute(target_text)
    for address, target in reverse.items():
        rdata = dns.rdata.from_text(_IN, dns.rdatatype.PTR, target.to_text())
        builder.add(dns.reversename.from_address(address), rdata, ttl)
    ns_rdata = _address_rdata(ns_address)[1]
    for ns_host in {ns for ns, _ in authority.values()}:
        if builder.zone_for(ns_host) is not None and not builder.has_owner(ns_host):
            builder.add(ns_host, ns_rdata, ttl)
    return Zones(builder.finish(authority, ttl), domains)


def _add_domain(
    builder: _Builder, spec: DomainSpec, origin: dns.name.Name, common_mx_port: int, ttl: int
) -> list[tuple[str, dns.name.Name]]:
    """Add one domain's records; return (address, PTR target) pairs for the reverse zones."""
    if spec.records_only:
        for record in spec.extra:
            _add_extra(builder, origin, record)
        return []
    if not 0 < spec.mx_port < 65536:
        raise ValueError(f"{spec.name}: mx_port {spec.mx_port} out of range")
    main = _address(spec.address)
    extra_v6 = [_address(text) for text in spec.aaaa]
    if any(address.version != 6 for address in extra_v6):
        raise ValueError(f"{spec.name}: aaaa holds a non-IPv6 address: {spec.aaaa}")
    own = [str(main), *(str(address) for address in extra_v6)]

    def add_addresses(owner: dns.name.Name, addresses: Iterable[str]) -> None:
        for text in addresses:
            builder.add(owner, _address_rdata(text)[1], ttl)

    add_addresses(origin, own)

    # MX: RFC 5321 §5.1 (implicit MX when none), RFC 7505 (null MX).
    hosts: list[tuple[dns.name.Name, int]] = []
    if spec.null_mx:
        if spec.mx:
            raise ValueError(f"{spec.name}: null_mx excludes other MX hosts (RFC 7505 §3)")
        builder.add(origin, dns.rdata.from_text(_IN, dns.rdatatype.MX, "0 ."), ttl)
    elif spec.mx is None:
        host = dns.name.Name(("mx", *origin.labels))
        hosts.append((host, 10))
        add_addresses(host, own)
    else:
        for mx in spec.mx:
            host = _absolute(mx.name)
            if not 0 <= mx.preference < 65536:
                raise ValueError(f"{spec.name}: MX preference {mx.preference} out of range")
            hosts.append((host, mx.preference))
            add_addresses(host, mx.addresses)
    for host, preference in hosts:
        builder.add(origin, dns.rdata.from_text(_IN, "MX", f"{preference} {host}"), ttl)

    # SPF (RFC 7208): the domain's own addresses may send; a null-MX domain sends nothing.
    mechanisms = [] if spec.null_mx else [f"ip{ipaddress.ip_address(a).version}:{a}" for a in own]
    if spec.spf:
        spf_text = " ".join(["v=spf1", *mechanisms, *spec.spf_terms, "-all"])
        builder.add(origin, _txt(spf_text), ttl)

    # Mail targets: the MX hosts, or the apex itself when there is no MX (implicit MX).
    targets = [host for host, _ in sorted(hosts, key=lambda pair: pair[1])]
    if not targets and not spec.null_mx:
        targets = [origin]
    if spec.mx_port != common_mx_port:
        # RFC 2782 SRV: tells the relay which port this domain's MX server is on.
        srv_owner = dns.name.Name(("_smtp", "_tcp", *origin.labels))
        for target in targets:
            srv = dns.rdata.from_text(_IN, "SRV", f"0 0 {spec.mx_port} {target}")
            builder.add(srv_owner, srv, ttl)

    for record in spec.extra:
        _add_extra(builder, origin, record)

    ptr_target = targets[0] if targets else origin
    return [(address, ptr_target) for address in own]


def _add_extra(builder: _Builder, origin: dns.name.Name, record: ExtraRecord) -> None:
    rdtype_text = record.rdtype.upper()
    if rdtype_text not in EXTRA_TYPES:
        raise ValueError(f"extra record type {record.rdtype!r} not one of {sorted(EXTRA_TYPES)}")
    owner = dns.name.from_text(record.name.lower(), origin=origin)
    rdtype = dns.rdatatype.from_text(rdtype_text)
    if rdtype == dns.rdatatype.TXT:
        rdata = _txt(record.value)
    else:
        # Relative names in the value are relative to the domain, as in a zone file.
        rdata = dns.rdata.from_text(_IN, rdtype, record.value, origin=origin, relativize=False)
    if record.ttl < 0:
        raise ValueError(f"extra record {record}: ttl must be >= 0")
    builder.add(owner, rdata, record.ttl)
