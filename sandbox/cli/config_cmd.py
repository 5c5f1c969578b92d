"""``mail-sandbox config``: the effective configuration, as TOML."""

from __future__ import annotations

from typing import Any

import click

from sandbox.cli.options import build_config, common_options, pop_common
from sandbox.config import to_toml


@click.command("config")
@common_options
@click.pass_context
def config_command(ctx: click.Context, /, **kwargs: Any) -> None:
    """Print the effective configuration (defaults < file < environment < flags) as TOML."""
    click.echo(to_toml(build_config(ctx, pop_common(kwargs))), nl=False)
