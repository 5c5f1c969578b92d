"""The DNS stub as part of a running sandbox: zones from the config, queries journaled."""

from __future__ import annotations

import subprocess
from pathlib import Path

import dns.message
import dns.query
import dns.rcode

from sandbox.config import load_config
from sandbox.testing import Sandbox
from tests.conftest import FREE_PORTS, PORT0, ServeProcess, cli, require_binary


def ask(sandbox: Sandbox, name: str, rdtype: str) -> dns.message.Message:
    host, port = sandbox.dns_address
    return dns.query.udp(dns.message.make_query(name, rdtype), host, port=port, timeout=2)


def answers(response: dns.message.Message) -> list[str]:
    return [rd.to_text() for rrset in response.answer for rd in rrset]


def test_mx_then_a_leads_to_the_domains_mx_server(sandbox: Sandbox) -> None:
    assert answers(ask(sandbox, "beta.test", "MX")) == ["10 mx.beta.test."]
    assert answers(ask(sandbox, "mx.beta.test", "A")) == [sandbox.mx_addresses["beta.test"][0]]
    assert answers(ask(sandbox, "12.0.0.127.in-addr.arpa", "PTR")) == ["mx.beta.test."]
    assert answers(ask(sandbox, "beta.test", "TXT")) == ['"v=spf1 ip4:127.0.0.12 -all"']


def test_free_mx_ports_are_published_in_srv(sandbox: Sandbox) -> None:
    port = sandbox.mx_addresses["gamma.test"][1]
    assert answers(ask(sandbox, "_smtp._tcp.gamma.test", "SRV")) == [f"0 0 {port} mx.gamma.test."]


def test_outside_the_zones_is_refused_and_unknown_inside_is_nxdomain(
    sandbox: Sandbox,
) -> None:
    assert ask(sandbox, "example.com", "MX").rcode() == dns.rcode.REFUSED
    assert ask(sandbox, "nope.beta.test", "A").rcode() == dns.rcode.NXDOMAIN


def test_queries_are_published_and_journaled(sandbox: Sandbox) -> None:
    ask(sandbox, "BeTa.TeSt", "MX")
    [event] = sandbox.journal("dns.query")
    assert (event["qname"], event["qtype"], event["rcode"]) == ("BeTa.TeSt.", "MX", "NOERROR")
    assert event["answer"] == "MX 10 mx.beta.test."
    assert event["transport"] == "udp" and event["client"].startswith("127.0.0.1:")


def test_domain_dns_settings_from_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "sandbox.toml"
    path.write_text(
        """
[domains."alpha.test"]
mx = [{ host = "mx.alpha.test", preference = 20 },
      { host = "dead.alpha.test", preference = 10, addresses = ["127.0.0.250"] }]
records = [{ name = "www", type = "CNAME", value = "@" }]

[domains."nomail.test"]
null_mx = true

[domains."implicit.test"]
mx = []
dns_fault = { mode = "servfail" }
"""
    )
    flags = {"data": str(tmp_path / "d.sqlite3"), **PORT0}
    config = load_config(config_file=str(path), env={}, flags=flags)
    with Sandbox(config=config) as sandbox:
        assert sorted(answers(ask(sandbox, "alpha.test", "MX"))) == [
            "10 dead.alpha.test.",
            "20 mx.alpha.test.",
        ]
        assert answers(ask(sandbox, "dead.alpha.test", "A")) == ["127.0.0.250"]
        assert answers(ask(sandbox, "mx.alpha.test", "A")) == [
            sandbox.mx_addresses["alpha.test"][0]
        ]
        assert answers(ask(sandbox, "www.alpha.test", "A")) == [
            "alpha.test.",
            sandbox.mx_addresses["alpha.test"][0],
        ]
        assert answers(ask(sandbox, "nomail.test", "MX")) == ["0 ."]
        assert ask(sandbox, "implicit.test", "A").rcode() == dns.rcode.SERVFAIL


def test_bad_dns_settings_are_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[domains."a.test"]\nrecords = [{ name = "x", type = "BOGUS", value = "1" }]\n')
    result = cli("config", "--config", str(path))
    assert result.returncode == 2
    assert "domains.a.test.records[0].type: expected one of A, AAAA" in result.stderr


def test_cli_dns_prints_like_dig_short(serve_process: ServeProcess) -> None:
    args = ["--dns-port", str(serve_process.dns_port)]
    mx = cli("dns", "beta.test", "MX", *args)
    assert (mx.returncode, mx.stdout) == (0, "10 mx.beta.test.\n")
    assert cli("dns", "mx.beta.test", *args).stdout == "127.0.0.12\n"
    assert cli("dns", "mx.beta.test", "--tcp", *args).stdout == "127.0.0.12\n"
    assert cli("dns", "ghost.beta.test", *args).stdout == "NXDOMAIN\n"
    assert cli("dns", "example.com", "MX", *args).stdout == "REFUSED\n"
    bad = cli("dns", "beta.test", "NOTATYPE", *args)
    assert bad.returncode == 2 and "is not a DNS record type" in bad.stderr


def test_cli_dns_without_a_stub_is_exit_1() -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = cli("dns", "beta.test", "--dns-port", str(port))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1


def test_dig_against_a_running_sandbox(serve_process: ServeProcess) -> None:
    dig = require_binary("dig")
    port = str(serve_process.dns_port)

    def run(*args: str) -> str:
        return subprocess.run(
            [dig, "@127.0.0.1", "-p", port, *args], capture_output=True, text=True, timeout=10
        ).stdout

    assert run("+short", "MX", "beta.test") == "10 mx.beta.test.\n"
    assert run("+short", "A", "mx.beta.test") == "127.0.0.12\n"
    assert "status: REFUSED" in run("MX", "example.com")
    assert "flags: qr aa" in run("MX", "beta.test")


def test_dig_dnssec_gets_the_do_bit_back(serve_process: ServeProcess) -> None:
    """RFC 3225 §3: the DO bit of the query is copied into the reply's OPT record."""
    dig = require_binary("dig")
    port = str(serve_process.dns_port)
    out = subprocess.run(
        [dig, "@127.0.0.1", "-p", port, "+dnssec", "MX", "beta.test"],
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout
    [opt_line] = [line for line in out.splitlines() if line.startswith("; EDNS:")]
    assert "flags: do;" in opt_line, out
    plain = subprocess.run(
        [dig, "@127.0.0.1", "-p", port, "MX", "beta.test"],
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout
    [opt_line] = [line for line in plain.splitlines() if line.startswith("; EDNS:")]
    assert "do" not in opt_line.partition("flags:")[2].split(";")[0], plain


def test_each_zones_name_server_resolves_in_its_own_zone(sandbox: Sandbox) -> None:
    dns_host = sandbox.dns_address[0]
    for domain in ("alpha.test", "beta.test"):
        assert answers(ask(sandbox, domain, "NS")) == [f"ns.{domain}."]
        reply = ask(sandbox, f"ns.{domain}", "A")
        assert reply.rcode() == dns.rcode.NOERROR
        assert answers(reply) == [dns_host]


def test_dns_port_in_use_is_one_line(serve_process: ServeProcess, tmp_path: Path) -> None:
    result = cli(
        "serve",
        "--data",
        str(tmp_path / "x.sqlite3"),
        *FREE_PORTS,  # every other listener on a free port: only the DNS port clashes
        "--dns-port",
        str(serve_process.dns_port),
    )
    assert result.returncode == 1
    assert "already in use" in result.stderr and "--dns-port 0" in result.stderr
