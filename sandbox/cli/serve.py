"""``mail-sandbox serve``: every server, headless, until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import shlex
import signal
import sys
from typing import Any

import click

from sandbox.cli.options import build_config, common_options, pop_common
from sandbox.config import Config
from sandbox.runtime import Endpoints, Runtime


@click.command()
@click.option(
    "--allow-open",
    is_flag=True,
    default=None,
    help="Allow --host beyond loopback without accounts (anyone reaching it reads the mail).",
)
@common_options
@click.pass_context
def serve(ctx: click.Context, /, allow_open: bool | None, **kwargs: Any) -> None:
    """Run every server without the TUI; prints one JSON "ready" line once listening."""
    flags = pop_common(kwargs)
    flags["allow_open"] = allow_open
    run_serve(build_config(ctx, flags))


def run_serve(config: Config) -> None:
    logging.basicConfig(level=logging.WARNING, format="mail-sandbox: %(levelname)s %(message)s")
    asyncio.run(_serve(config))


async def _serve(config: Config) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runtime = Runtime(config)
    endpoints = await runtime.start()
    try:
        print(endpoints.ready_line(), flush=True)
        print(banner(endpoints, config), file=sys.stderr, flush=True)
        await stop.wait()
    finally:
        await runtime.stop()


def banner(endpoints: Endpoints, config: Config) -> str:
    """What a developer needs next, with the ports and data file this sandbox really has."""
    ready = endpoints.ready()
    host, port = endpoints.smtp
    http = endpoints.http
    smtps = ready.get("smtps")
    tls = "STARTTLS offered" + (f", SMTPS (implicit TLS) on {smtps[1]}" if smtps else "")
    if config.accounts:
        auth = "AUTH PLAIN/LOGIN checks the configured accounts"
    else:
        auth = "AUTH optional: any login and password accepted"
    if config.tls.require_before_auth:
        auth += " (after TLS only)"
    target = command_target(endpoints, config)
    lines = [
        f"mail-sandbox is running. Point your app at SMTP {host}:{port} ({tls}; {auth}).",
        *(
            f"  {name.upper():<5} {value[0]}:{value[1]}"
            for name, value in ready.items()
            if name not in ("event", "smtp", "smtps", "dns", "mx", "data", "http")
            and isinstance(value, list)
            and len(value) == 2
        ),
        f"  DNS   {endpoints.dns[0]}:{endpoints.dns[1]} (try: mail-sandbox dns{target}"
        f" {next(iter(endpoints.mx), 'alpha.test')} MX)",
        *([f"  HTTP API: http://{http[0]}:{http[1]}/api/v1/ (Mailpit's)"] if http else []),
        *([f"  Webmail: http://{http[0]}:{http[1]}/ (log in as a mailbox or all)"] if http else []),
        *(f"  MX of {d}: {h}:{p}" for d, (h, p) in endpoints.mx.items()),
        f"  data: {endpoints.data}",
        f"  List mail with `mail-sandbox messages{target}`; stop with Ctrl-C.",
    ]
    return "\n".join(lines)


def command_target(endpoints: Endpoints, config: Config) -> str:
    """The flags a command needs to reach this sandbox: --data, unless it is the default."""
    if config.in_memory:  # nothing to read the ports from: name them
        return f" --smtp-port {endpoints.smtp[1]} --dns-port {endpoints.dns[1]}"
    from sandbox.config import default_data_path

    if endpoints.data == default_data_path():
        return ""
    return f" --data {shlex.quote(endpoints.data)}"
