"""The flags every command shares, and turning them into a Config."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from sandbox.config import Config

F = TypeVar("F", bound=Callable[..., Any])

# click parameter name → dotted configuration key
_FLAG_KEYS = {
    "data": "data",
    "host": "host",
    "smtp_port": "smtp.port",
    "pop3_port": "pop3.port",
    "imap_port": "imap.port",
    "dns_port": "dns.port",
    "mx_port": "mx.port",
    "smtps_port": "smtps.port",
    "pop3s_port": "pop3s.port",
    "imaps_port": "imaps.port",
    "http_port": "http.port",
    "domains": "domains",
}
_PORT = click.IntRange(0, 65535)
_GIVEN = "sandbox.flags_given"  # ctx.meta key: the configuration keys given as flags


def common_options(func: F) -> F:
    """--config, --data, --host, the ports and --domain, on the group and every command."""
    decorators = [
        click.option(
            "--config",
            "config_file",
            metavar="FILE",
            help="TOML configuration file (default: $MAIL_SANDBOX_CONFIG).",
        ),
        click.option(
            "--data",
            metavar="PATH",
            help="The SQLite data file; ':memory:' keeps nothing (serve only).",
        ),
        click.option("--host", metavar="IP", help="Address to listen on (default 127.0.0.1)."),
        click.option("--smtp-port", type=_PORT, help="Submission port (default 1025; 0 = any)."),
        click.option("--pop3-port", type=_PORT, help="POP3 port (default 1110)."),
        click.option("--imap-port", type=_PORT, help="IMAP port (default 1143)."),
        click.option("--dns-port", type=_PORT, help="DNS stub port (default 1053)."),
        click.option("--mx-port", type=_PORT, help="MX servers' port (default 2525; 0 = any)."),
        click.option("--smtps-port", type=_PORT, help="Submission over TLS (default 1465)."),
        click.option("--pop3s-port", type=_PORT, help="POP3 over TLS (default 1995)."),
        click.option("--imaps-port", type=_PORT, help="IMAP over TLS (default 1993)."),
        click.option("--http-port", type=_PORT, help="HTTP API and webmail (default 8025)."),
        click.option(
            "--domain",
            "domains",
            multiple=True,
            metavar="NAME",
            help="A fake domain; repeat for several (replaces alpha.test, beta.test, gamma.test).",
        ),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def pop_common(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Remove the common flags from a command's kwargs and return them by config key."""
    flags: dict[str, Any] = {"config_file": kwargs.pop("config_file", None)}
    for param, key in _FLAG_KEYS.items():
        value = kwargs.pop(param, None)
        if key == "domains":
            value = tuple(value) if value else None
        flags[key] = value
    return flags


def build_config(ctx: click.Context, /, flags: dict[str, Any]) -> Config:
    """Flags given on the command win over flags given before it (``mail-sandbox --data X cmd``)."""
    merged: dict[str, Any] = dict(ctx.obj or {})
    merged.update({k: v for k, v in flags.items() if v is not None})
    ctx.meta[_GIVEN] = frozenset(merged)
    config_file = merged.pop("config_file", None)
    from sandbox.config import load_config  # here, so `--help` and `--version` stay instant

    return load_config(config_file=config_file, flags=merged)


def client_host(config: Config) -> str:
    """Where a client reaches the sandbox: a wildcard listen address through loopback."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(config.host, config.host)


def sandbox_address(ctx: click.Context, config: Config, name: str) -> tuple[str, int]:
    """Where the ``name`` listener ("smtp", "dns") of the sandbox on ``config.data`` is.

    A port given as a flag wins; then the endpoints file of the running sandbox; then,
    for the default data file only, the configured port. A data file named with
    ``--data`` and no sandbox running on it is an error that says so.
    """
    from sandbox.cli.errors import failure
    from sandbox.endpoints import address, not_running, read_endpoints

    given = ctx.meta.get(_GIVEN, frozenset())
    configured = (client_host(config), int(getattr(config, name).port))
    if f"{name}.port" in given:
        return configured
    ready = None if config.in_memory else read_endpoints(config.data)
    if ready is not None:
        found = address(ready, name)
        if found is not None:
            return found
    if "data" in given:
        raise failure(not_running(config.data))
    return configured
