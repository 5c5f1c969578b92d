"""Zone building and lookup, without sockets."""

from __future__ import annotations

import dns.name
import dns.rcode
import dns.rdatatype
import dns.reversename
import pytest

from fake_dns import Answer, DnsFault, DomainSpec, ExtraRecord, MxHost, Zones, build_zones


def ask(zones: Zones, name: str, rdtype: str) -> Answer:
    return zones.lookup(dns.name.from_text(name), dns.rdatatype.from_text(rdtype))


def texts(answer: Answer, rdtype: str | None = None) -> list[str]:
    """Rdata texts of the answer section (of one type if given), sorted."""
    return sorted(
        rdata.to_text()
        for rrset in answer.answer
        if rdtype is None or rrset.rdtype == dns.rdatatype.from_text(rdtype)
        for rdata in rrset
    )


def test_apex_soa_and_ns(zones: Zones) -> None:
    soa = ask(zones, "alpha.test", "SOA")
    assert soa.rcode == dns.rcode.NOERROR
    assert texts(soa)[0].startswith("ns.alpha.test. hostmaster.alpha.test. 1 ")
    assert texts(ask(zones, "beta.test", "NS")) == ["ns.beta.test."]
    beta_soa = texts(ask(zones, "beta.test", "SOA"))[0]
    assert beta_soa.startswith("ns.beta.test. hostmaster.beta.test. 1 ")


def test_each_zones_name_server_has_an_address_in_that_zone(zones: Zones) -> None:
    for domain in ("alpha.test", "beta.test"):
        answer = ask(zones, f"ns.{domain}", "A")
        assert answer.rcode == dns.rcode.NOERROR and answer.zone == domain
        assert texts(answer) == ["127.0.0.1"]


def test_the_name_servers_address_is_where_the_stub_listens() -> None:
    zones = build_zones(
        [DomainSpec("a.test", "127.0.0.11")], common_mx_port=25, ns_address="127.0.0.53"
    )
    assert texts(ask(zones, "ns.a.test", "A")) == ["127.0.0.53"]


def test_default_mx_and_addresses(zones: Zones) -> None:
    assert texts(ask(zones, "beta.test", "MX")) == ["10 mx.beta.test."]
    assert texts(ask(zones, "mx.beta.test", "A")) == ["127.0.0.12"]
    assert texts(ask(zones, "beta.test", "A")) == ["127.0.0.12"]
    # Default MX merged with an extra MX record.
    assert texts(ask(zones, "alpha.test", "MX")) == ["10 mx.alpha.test.", "20 mx2.alpha.test."]


def test_aaaa_for_apex_and_default_mx(zones: Zones) -> None:
    assert texts(ask(zones, "alpha.test", "AAAA")) == ["fd00::11"]
    assert texts(ask(zones, "mx.alpha.test", "AAAA")) == ["fd00::11"]


def test_mx_list_with_preferences_and_addresses(zones: Zones) -> None:
    assert texts(ask(zones, "epsilon.test", "MX")) == [
        "10 mx-a.epsilon.test.",
        "20 mx-b.epsilon.test.",
        "30 down.epsilon.test.",
        "40 noaddr.epsilon.test.",
    ]
    assert texts(ask(zones, "mx-b.epsilon.test", "A")) == ["127.0.0.16"]
    assert texts(ask(zones, "mx-b.epsilon.test", "AAAA")) == ["fd00::16"]
    assert texts(ask(zones, "down.epsilon.test", "A")) == ["127.0.0.250"]
    assert ask(zones, "noaddr.epsilon.test", "A").rcode == dns.rcode.NXDOMAIN


def test_no_mx_means_implicit_mx_via_apex_a(zones: Zones) -> None:
    answer = ask(zones, "gamma.test", "MX")
    assert answer.rcode == dns.rcode.NOERROR
    assert answer.answer == ()
    assert texts(ask(zones, "gamma.test", "A")) == ["127.0.0.13"]
    assert ask(zones, "mx.gamma.test", "A").rcode == dns.rcode.NXDOMAIN


def test_null_mx(zones: Zones) -> None:
    assert texts(ask(zones, "delta.test", "MX")) == ["0 ."]
    assert texts(ask(zones, "delta.test", "TXT")) == ['"v=spf1 -all"']


def test_null_mx_excludes_other_hosts() -> None:
    with pytest.raises(ValueError, match="null_mx"):
        build_zones(
            [DomainSpec("a.test", "127.0.0.1", null_mx=True, mx=(MxHost("m.a.test", 1),))],
            common_mx_port=25,
        )


def test_spf_txt(zones: Zones) -> None:
    assert texts(ask(zones, "beta.test", "TXT")) == ['"v=spf1 ip4:127.0.0.12 -all"']
    assert texts(ask(zones, "alpha.test", "TXT")) == ['"v=spf1 ip4:127.0.0.11 ip6:fd00::11 -all"']


def test_srv_only_when_port_differs(zones: Zones) -> None:
    assert texts(ask(zones, "_smtp._tcp.beta.test", "SRV")) == ["0 0 2526 mx.beta.test."]
    assert ask(zones, "_smtp._tcp.alpha.test", "SRV").rcode == dns.rcode.NXDOMAIN
    assert ask(zones, "_smtp._tcp.gamma.test", "SRV").rcode == dns.rcode.NXDOMAIN


def test_srv_targets_apex_without_mx() -> None:
    zones = build_zones([DomainSpec("a.test", "127.0.0.1", mx_port=2600, mx=())], common_mx_port=25)
    assert texts(ask(zones, "_smtp._tcp.a.test", "SRV")) == ["0 0 2600 a.test."]


def test_ptr_records(zones: Zones) -> None:
    def ptr(address: str) -> list[str]:
        return texts(zones.lookup(dns.reversename.from_address(address), dns.rdatatype.PTR))

    assert ptr("127.0.0.12") == ["mx.beta.test."]
    assert ptr("127.0.0.13") == ["gamma.test."]  # no MX: the apex
    assert ptr("127.0.0.15") == ["mx-a.epsilon.test."]  # lowest preference
    assert ptr("fd00::11") == ["mx.alpha.test."]
    assert ptr("127.0.0.99") == ["host99.alpha.test."]
    assert ptr("fd00::99") == ["host99.alpha.test."]
    unknown = zones.lookup(dns.reversename.from_address("10.1.2.3"), dns.rdatatype.PTR)
    assert unknown.rcode == dns.rcode.NXDOMAIN
    assert unknown.zone == "in-addr.arpa"


def test_extra_records(zones: Zones) -> None:
    assert texts(ask(zones, "_dmarc.alpha.test", "TXT")) == ['"v=DMARC1; p=none"']
    assert texts(ask(zones, "_imap._tcp.alpha.test", "SRV")) == ["0 1 143 mx.alpha.test."]
    assert texts(ask(zones, "sub.alpha.test", "NS")) == ["ns.alpha.test."]
    assert texts(ask(zones, "mx2.alpha.test", "A")) == ["127.0.0.21"]
    deep = ask(zones, "deep.er.names.alpha.test", "A")
    assert deep.answer[0].ttl == 30
    assert len(ask(zones, "big.alpha.test", "TXT").answer[0]) == 24


def test_extra_record_absolute_name_and_aaaa() -> None:
    zones = build_zones(
        [
            DomainSpec(
                "a.test",
                "127.0.0.1",
                extra=(
                    ExtraRecord("host.a.test.", "AAAA", "::1"),
                    ExtraRecord("rev", "PTR", "host.a.test."),
                ),
            )
        ],
        common_mx_port=25,
    )
    assert texts(ask(zones, "host.a.test", "AAAA")) == ["::1"]
    assert texts(ask(zones, "rev.a.test", "PTR")) == ["host.a.test."]


def test_long_unquoted_txt_is_one_chunked_string() -> None:
    value = "v=spf1 " + "a" * 400
    zones = build_zones(
        [DomainSpec("a.test", "127.0.0.1", extra=(ExtraRecord("long", "TXT", value),))],
        common_mx_port=25,
    )
    rdata = ask(zones, "long.a.test", "TXT").answer[0][0]
    assert [len(part) for part in rdata.strings] == [255, 152]
    assert b"".join(rdata.strings).decode() == value


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (ExtraRecord("x", "SOA", "a. b. 1 2 3 4 5"), "not one of"),
        (ExtraRecord("x.example.com.", "A", "127.0.0.1"), "outside every served zone"),
        (ExtraRecord("www", "A", "127.0.0.1"), "CNAME and other records"),
    ],
)
def test_bad_extra_records_are_rejected(extra: ExtraRecord, message: str) -> None:
    spec = DomainSpec("a.test", "127.0.0.1", extra=(ExtraRecord("www", "CNAME", "@"), extra))
    with pytest.raises(ValueError, match=message):
        build_zones([spec], common_mx_port=25)


@pytest.mark.parametrize(
    "spec",
    [
        DomainSpec("a.test", "not-an-ip"),
        DomainSpec("a.test", "127.0.0.1", aaaa=("127.0.0.2",)),
        DomainSpec("a.test", "127.0.0.1", mx_port=0),
        DomainSpec("a.test", "127.0.0.1", mx=(MxHost("mx.other.example", 10, ("127.0.0.1",)),)),
        DomainSpec(".", "127.0.0.1"),
        DomainSpec("", "127.0.0.1"),
        DomainSpec("bad..name", "127.0.0.1"),
    ],
)
def test_bad_specs_are_rejected(spec: DomainSpec) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - several messages
        build_zones([spec], common_mx_port=25)


def test_duplicate_domains_are_rejected() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        build_zones(
            [DomainSpec("a.test", "127.0.0.1"), DomainSpec("A.test.", "127.0.0.2")],
            common_mx_port=25,
        )


def test_cname_followed(zones: Zones) -> None:
    answer = ask(zones, "www.alpha.test", "A")
    assert answer.rcode == dns.rcode.NOERROR
    assert [rrset.rdtype for rrset in answer.answer] == [dns.rdatatype.CNAME, dns.rdatatype.A]
    assert answer.summary == "CNAME alpha.test., A 127.0.0.11"
    chain = ask(zones, "alias.alpha.test", "MX")
    assert texts(chain, "CNAME") == ["alpha.test.", "www.alpha.test."]
    assert texts(chain, "MX") == ["10 mx.alpha.test.", "20 mx2.alpha.test."]


def test_cname_itself_and_across_zones(zones: Zones) -> None:
    assert texts(ask(zones, "www.alpha.test", "CNAME")) == ["alpha.test."]
    cross = ask(zones, "cross.alpha.test", "A")
    assert texts(cross, "A") == ["127.0.0.12"]


def test_cname_out_of_zone_loop_and_dangling(zones: Zones) -> None:
    outside = ask(zones, "outside.alpha.test", "A")
    assert (outside.rcode, texts(outside)) == (dns.rcode.NOERROR, ["example.com."])
    loop = ask(zones, "loop1.alpha.test", "A")
    assert loop.rcode == dns.rcode.NOERROR
    assert texts(loop) == ["loop1.alpha.test.", "loop2.alpha.test."]
    dangling = ask(zones, "dangling.alpha.test", "A")
    assert dangling.rcode == dns.rcode.NXDOMAIN  # RFC 6604: the last name's rcode
    assert dangling.authority[0].rdtype == dns.rdatatype.SOA


def test_nodata_has_soa(zones: Zones) -> None:
    answer = ask(zones, "mx.beta.test", "TXT")
    assert answer.rcode == dns.rcode.NOERROR
    assert answer.answer == ()
    assert [rrset.rdtype for rrset in answer.authority] == [dns.rdatatype.SOA]
    assert answer.authority[0].name == dns.name.from_text("beta.test")


def test_nxdomain_has_soa(zones: Zones) -> None:
    answer = ask(zones, "nope.beta.test", "A")
    assert answer.rcode == dns.rcode.NXDOMAIN
    assert answer.authority[0].name == dns.name.from_text("beta.test")
    assert answer.zone == "beta.test"


@pytest.mark.parametrize(
    "name", ["_tcp.beta.test", "er.names.alpha.test", "names.alpha.test", "_tcp.alpha.test"]
)
def test_empty_non_terminal_is_nodata(zones: Zones, name: str) -> None:
    answer = ask(zones, name, "A")
    assert answer.rcode == dns.rcode.NOERROR
    assert answer.answer == ()
    assert answer.authority


@pytest.mark.parametrize("name", ["example.com", "test", "alphaXtest", "com", "."])
def test_outside_every_zone_is_refused(zones: Zones, name: str) -> None:
    answer = ask(zones, name, "A")
    assert answer.rcode == dns.rcode.REFUSED
    assert answer.zone is None
    assert answer.answer == answer.authority == ()


@pytest.mark.parametrize("name", ["BETA.TEST", "Mx.Beta.Test.", "beta.TEST"])
def test_case_insensitive(zones: Zones, name: str) -> None:
    assert ask(zones, name, "A").answer == ask(zones, name.lower(), "A").answer
    assert ask(zones, name, "A").rcode == dns.rcode.NOERROR


def test_case_insensitive_specs() -> None:
    zones = build_zones(
        [DomainSpec("Mixed.TEST", "127.0.0.1", extra=(ExtraRecord("WWW", "A", "127.0.0.2"),))],
        common_mx_port=25,
    )
    assert texts(ask(zones, "www.mixed.test", "A")) == ["127.0.0.2"]
    assert zones.zone_of(dns.name.from_text("X.MIXED.test")) == "mixed.test"


def test_any_answers_every_rrset(zones: Zones) -> None:
    types = {rrset.rdtype for rrset in ask(zones, "beta.test", "ANY").answer}
    assert types == {
        dns.rdatatype.SOA,
        dns.rdatatype.NS,
        dns.rdatatype.MX,
        dns.rdatatype.A,
        dns.rdatatype.TXT,
    }
    assert ask(zones, "nope.beta.test", "ANY").rcode == dns.rcode.NXDOMAIN


def test_reverse_zones_served(zones: Zones) -> None:
    assert {"in-addr.arpa", "ip6.arpa"} <= set(zones.zone_names)
    assert ask(zones, "in-addr.arpa", "SOA").rcode == dns.rcode.NOERROR


def test_faults_from_specs() -> None:
    zones = build_zones(
        [
            DomainSpec("a.test", "127.0.0.1", fault=DnsFault("servfail")),
            DomainSpec("b.test", "127.0.0.2"),
        ],
        common_mx_port=2525,
    )
    assert zones.faults == {"a.test": DnsFault("servfail")}


def test_bad_fault() -> None:
    with pytest.raises(ValueError, match="mode"):
        DnsFault("explode")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="delay_ms"):
        DnsFault(delay_ms=-1)


def test_custom_ns_name_and_ttl() -> None:
    zones = build_zones(
        [DomainSpec("a.test", "127.0.0.1")], common_mx_port=25, ns_name="dns.a.test", ttl=5
    )
    ns = ask(zones, "a.test", "NS")
    assert texts(ns) == ["dns.a.test."]
    assert ns.answer[0].ttl == 5


@pytest.mark.parametrize(
    "extra",
    [ExtraRecord("x", "MX", "not-a-number mx."), ExtraRecord("bad..label", "A", "127.0.0.1")],
)
def test_unparseable_extra_records_raise_value_error(extra: ExtraRecord) -> None:
    with pytest.raises(ValueError, match="invalid zone data"):
        build_zones([DomainSpec("a.test", "127.0.0.1", extra=(extra,))], common_mx_port=25)
