"""``mail-sandbox config`` and ``mail-sandbox ca``: what the sandbox is set up with."""

from __future__ import annotations

from typing import Any

import click

from sandbox.cli.errors import bad_input
from sandbox.cli.options import build_config, common_options, pop_common


@click.command("config")
@common_options
@click.pass_context
def config_command(ctx: click.Context, /, **kwargs: Any) -> None:
    """Print the effective configuration (defaults < file < environment < flags) as TOML."""
    from sandbox.config import to_toml

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
    from sandbox.tls import CA_FILE, tls_directory

    directory = tls_directory(config.data)
    ca_path = directory / CA_FILE if directory is not None else None
    if ca_path is None or not ca_path.exists():  # first use: make it (slow, once)
        from sandbox.runtime import certificate_names
        from sandbox.tls import SandboxTLS

        ca_path = SandboxTLS.for_data(config.data, certificate_names(config)).ca_path
    click.echo(
        f"TLS on every listener (STARTTLS, STLS and ports {config.smtps.port},"
        f" {config.pop3s.port}, {config.imaps.port}) uses a certificate from this CA:",
        err=True,
    )
    click.echo(str(ca_path))
