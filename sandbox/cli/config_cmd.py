"""``mail-sandbox config`` and ``mail-sandbox ca``: what the sandbox is set up with."""

from __future__ import annotations

from typing import Any

import click

from sandbox.cli.errors import bad_input
from sandbox.cli.options import build_config, common_options, pop_common
from sandbox.config import to_toml
from sandbox.runtime import certificate_names
from sandbox.tls import SandboxTLS


@click.command("config")
@common_options
@click.pass_context
def config_command(ctx: click.Context, /, **kwargs: Any) -> None:
    """Print the effective configuration (defaults < file < environment < flags) as TOML."""
    click.echo(to_toml(build_config(ctx, pop_common(kwargs))), nl=False)


@click.command("ca")
@common_options
@click.pass_context
def ca_command(ctx: click.Context, /, **kwargs: Any) -> None:
    """Print the path of the sandbox's CA certificate (last line), for clients to trust.

    It is made on first use and kept beside the data file, so trusting it once is enough:
    curl --cacert PATH, swaks --tls-ca-path PATH, ssl.create_default_context(cafile=PATH).
    """
    config = build_config(ctx, pop_common(kwargs))
    if config.in_memory:
        raise bad_input("--data :memory: has no CA file: a memory sandbox makes a new one each run")
    tls = SandboxTLS.for_data(config.data, certificate_names(config))
    click.echo(
        f"TLS on every listener (STARTTLS, STLS and ports {config.smtps.port},"
        f" {config.pop3s.port}, {config.imaps.port}) uses a certificate from this CA:",
        err=True,
    )
    click.echo(str(tls.ca_path))
