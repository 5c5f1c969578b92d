"""``python -m fake_dns``: run the stub alone, one JSON line per event on stdout.

Prints ``{"event": "ready", "dns": [host, port]}`` once UDP and TCP listen, then one
``{"event": "query", ...}`` line per query (unless ``--quiet``). SIGINT/SIGTERM stop it.
Bad arguments: one line on stderr, exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import ipaddress
import json
import signal
import sys
from collections.abc import Sequence
from typing import NoReturn

from fake_dns.server import DnsServer, QueryLog
from fake_dns.zone import DomainSpec, Zones, build_zones

DEFAULT_DOMAINS = ("alpha.test=127.0.0.11", "beta.test=127.0.0.12", "gamma.test=127.0.0.13")


class _Parser(argparse.ArgumentParser):
    """argparse, but errors are one line on stderr (exit 2), as every sandbox command."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _parser() -> _Parser:
    parser = _Parser(prog="python -m fake_dns", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--domain",
        action="append",
        metavar="NAME=ADDR[:PORT]",
        help="a fake domain and its MX server address (IPv6 with a port: NAME=[ADDR]:PORT); "
        f"repeatable; default {' '.join(DEFAULT_DOMAINS)}",
    )
    parser.add_argument("--host", default="127.0.0.1", help="IP address to listen on")
    parser.add_argument("--port", type=int, default=1053, help="UDP and TCP port (0: any free)")
    parser.add_argument("--mx-port", type=int, default=25, help="port of the MX servers")
    parser.add_argument("--ttl", type=int, default=60, help="TTL of every record")
    parser.add_argument("--quiet", action="store_true", help="no line per query")
    return parser


def _parse_domain(text: str, mx_port: int) -> DomainSpec:
    """``NAME=ADDR``, ``NAME=ADDR:PORT`` or ``NAME=[V6ADDR]:PORT``."""
    name, sep, rest = text.partition("=")
    if not sep or not name or not rest:
        raise ValueError(f"--domain expects NAME=ADDR[:PORT], got {text!r}")
    port_text = ""
    if rest.startswith("["):
        address, _, port_text = rest[1:].partition("]")
        port_text = port_text.removeprefix(":")
    elif rest.count(":") == 1:
        address, port_text = rest.split(":")
    else:
        address = rest
    if port_text and not port_text.isdigit():
        raise ValueError(f"--domain {text!r}: the port must be a number")
    return DomainSpec(name=name, address=address, mx_port=int(port_text) if port_text else mx_port)


def _zones(args: argparse.Namespace) -> Zones:
    specs = [_parse_domain(text, args.mx_port) for text in args.domain or DEFAULT_DOMAINS]
    # Each zone's NS host points at where this server listens (0.0.0.0: loopback; a
    # --host that is not an address is reported when the server starts).
    try:
        host = ipaddress.ip_address(args.host)
    except ValueError:
        host = ipaddress.ip_address("127.0.0.1")
    ns_address = "127.0.0.1" if host.is_unspecified else str(host)
    return build_zones(specs, common_mx_port=args.mx_port, ttl=args.ttl, ns_address=ns_address)


def _emit(event: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def _log_query(log: QueryLog) -> None:
    _emit({"event": "query", **dataclasses.asdict(log)})


async def _serve(zones: Zones, host: str, port: int, quiet: bool) -> int:
    server = DnsServer(zones, on_query=None if quiet else _log_query)
    try:
        bound = await server.start(host, port)
    except OSError as exc:
        sys.stderr.write(f"python -m fake_dns: cannot listen on {host}:{port}: {exc}\n")
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows
            loop.add_signal_handler(signum, stop.set)
    _emit({"event": "ready", "dns": list(bound)})
    try:
        await stop.wait()
    finally:
        await server.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not 0 <= args.port < 65536:
        parser.error(f"--port {args.port} out of range")
    try:
        zones = _zones(args)
    except ValueError as exc:
        parser.error(str(exc).replace("\n", " "))
    try:
        return asyncio.run(_serve(zones, args.host, args.port, args.quiet))
    except ValueError as exc:  # --host not an IP literal
        parser.error(f"--host {args.host!r}: {exc}")
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
