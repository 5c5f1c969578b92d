"""The ``mail-sandbox`` command."""

from __future__ import annotations

import sys
from typing import Any

import click

from sandbox.cli.config_cmd import ca_command, config_command
from sandbox.cli.dns_cmd import dns_command
from sandbox.cli.errors import USAGE, CliExit
from sandbox.cli.links_cmd import links_command
from sandbox.cli.mailio_cmds import export_command, import_command
from sandbox.cli.options import build_config, common_options, pop_common
from sandbox.cli.read import clear, messages, show, wait
from sandbox.cli.relay_cmds import chaos, queue
from sandbox.cli.send import send
from sandbox.cli.sendmail_cmd import sendmail_command
from sandbox.cli.serve import serve
from sandbox.config import ConfigError
from sandbox.runtime import StartupError
from sandbox.store import StoreError
from sandbox.tui.cli import run_up, tui, up

PROG = "mail-sandbox"


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@common_options
@click.version_option(package_name="mail-sandbox", prog_name=PROG)
@click.pass_context
def cli(ctx: click.Context, /, **kwargs: Any) -> None:
    """A local mail sandbox: catch-all SMTP for fake domains, stored in one SQLite file.

    With no command, starts every server and the TUI (as `up`).
    """
    flags = pop_common(kwargs)
    ctx.obj = {k: v for k, v in flags.items() if v is not None}
    if ctx.invoked_subcommand is None:
        run_up(build_config(ctx, {}))


for command in (
    serve,
    up,
    tui,
    messages,
    show,
    wait,
    send,
    clear,
    queue,
    chaos,
    dns_command,
    ca_command,
    config_command,
    links_command,
    sendmail_command,
    import_command,
    export_command,
):
    cli.add_command(command)


def main(argv: list[str] | None = None) -> None:
    """Entry point: every failure is one line on stderr; 2 for bad input, 1 otherwise."""
    try:
        result = cli.main(args=argv, prog_name=PROG, standalone_mode=False)
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx else PROG
        _fail(USAGE, f"{where}: {exc.format_message()} (see {where} --help)")
    except click.ClickException as exc:
        _fail(exc.exit_code, f"{PROG}: {exc.format_message()}")
    except click.Abort:
        _fail(130, f"{PROG}: interrupted")
    except CliExit as exc:
        _fail(exc.code, f"{PROG}: {exc.message}" if exc.message else "")
    except ConfigError as exc:
        _fail(USAGE, f"{PROG}: bad configuration: {exc}")
    except (StartupError, StoreError) as exc:
        _fail(1, f"{PROG}: {exc}")
    except KeyboardInterrupt:
        _fail(130, "")
    sys.exit(result if isinstance(result, int) else 0)


def _fail(code: int, message: str) -> None:
    if message:
        print(" ".join(message.split()), file=sys.stderr)
    sys.exit(code)
