"""``mail-sandbox dns NAME [TYPE]``: ask the running DNS stub, answered like ``dig +short``."""

from __future__ import annotations

from typing import Any

import click
import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

from sandbox.cli.errors import bad_input, failure
from sandbox.cli.options import build_config, common_options, pop_common, sandbox_address

TIMEOUT = 2.0


@click.command("dns")
@click.argument("name")
@click.argument("rdtype", metavar="[TYPE]", default="A")
@click.option("--tcp", is_flag=True, help="Ask over TCP instead of UDP.")
@common_options
@click.pass_context
def dns_command(ctx: click.Context, /, name: str, rdtype: str, tcp: bool, **kwargs: Any) -> None:
    """Ask the sandbox's DNS stub (default type A); prints the rcode unless NOERROR."""
    config = build_config(ctx, pop_common(kwargs))
    try:
        qtype = dns.rdatatype.from_text(rdtype)
    except dns.rdatatype.UnknownRdatatype:
        raise bad_input(f"{rdtype!r} is not a DNS record type (try MX, A, TXT, SRV)") from None
    try:
        query = dns.message.make_query(name, qtype)
    except dns.exception.DNSException as exc:
        raise bad_input(f"{name!r} is not a DNS name: {exc}") from None
    host, port = sandbox_address(ctx, config, "dns")
    if port == 0:
        raise bad_input("--dns-port 0 means 'any free port' for serve; give the port it printed")
    try:
        if tcp:
            response = dns.query.tcp(query, host, port=port, timeout=TIMEOUT)
        else:
            response, _ = dns.query.udp_with_fallback(query, host, port=port, timeout=TIMEOUT)
    except dns.exception.Timeout:
        raise failure(
            f"no answer from the DNS stub at {host}:{port} within {TIMEOUT:g}s: is"
            " `mail-sandbox serve` running (or is a timeout fault on for that domain)?"
        ) from None
    except OSError as exc:
        raise failure(
            f"cannot reach the DNS stub at {host}:{port} ({exc.strerror or exc}):"
            " start it with `mail-sandbox serve`, or pass --dns-port"
        ) from None
    for rrset in response.answer:
        for rdata in rrset:
            click.echo(rdata.to_text())
    if response.rcode() != dns.rcode.NOERROR:
        click.echo(dns.rcode.to_text(response.rcode()))
