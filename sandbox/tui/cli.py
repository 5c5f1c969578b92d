"""``mail-sandbox up`` (servers and TUI in one process) and ``mail-sandbox tui`` (attach)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click
import platformdirs

from sandbox.cli.errors import bad_input, failure
from sandbox.cli.options import build_config, common_options, pop_common
from sandbox.config import Config
from sandbox.runtime import Runtime
from sandbox.tui.app import SandboxApp, make_app

LOG_NAME = "mail-sandbox.log"


def log_file(config: Config) -> Path:
    """Next to the data file; the user's log folder for an in-memory store."""
    if config.in_memory:
        return platformdirs.user_log_path("mail-sandbox") / LOG_NAME
    return Path(config.data).parent / LOG_NAME


def log_to_file(config: Config) -> Path:
    """The screen belongs to the TUI: every log record goes to a file instead."""
    path = log_file(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    return path


def _run(app: SandboxApp) -> None:
    app.run()
    if app.startup_error is not None:
        raise failure(app.startup_error)


def run_up(config: Config) -> None:
    log_to_file(config)
    _run(make_app(config, runtime=Runtime(config)))


@click.command()
@common_options
@click.pass_context
def up(ctx: click.Context, /, **kwargs: Any) -> None:
    """Start every server and the TUI in one process (logs go to mail-sandbox.log)."""
    run_up(build_config(ctx, pop_common(kwargs)))


@click.command()
@common_options
@click.pass_context
def tui(ctx: click.Context, /, **kwargs: Any) -> None:
    """The TUI attached to a sandbox already running (`serve`) on the same data file."""
    config = build_config(ctx, pop_common(kwargs))
    if config.in_memory:
        raise bad_input(
            "--data :memory: cannot be attached to: an in-memory store lives inside its"
            " serve process; use mail-sandbox up, or serve with a data file"
        )
    if not Path(config.data).exists():
        raise failure(
            f"no sandbox data at {config.data}; start one with: mail-sandbox serve"
            f" --data {config.data}"
        )
    log_to_file(config)
    _run(make_app(config))
