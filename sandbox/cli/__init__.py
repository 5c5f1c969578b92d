"""The ``mail-sandbox`` command.

Commands load lazily: ``mail-sandbox messages`` imports the store and nothing of the
servers or the TUI, so a shell test that calls the CLI a hundred times does not pay for
Textual, the IMAP server or the runtime on each call (``tests/bench/cli_startup.py``).
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click
from click.shell_completion import CompletionItem

from sandbox import __version__
from sandbox.cli.errors import USAGE, CliExit
from sandbox.cli.options import build_config, common_options, pop_common

PROG = "mail-sandbox"

# name → (module, attribute, one-line help shown by `mail-sandbox --help`)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "serve": ("sandbox.cli.serve", "serve", "Run every server without the TUI."),
    "up": ("sandbox.tui.cli", "up", "Start every server and the TUI in one process."),
    "tui": ("sandbox.tui.cli", "tui", "The TUI attached to a running sandbox."),
    "messages": ("sandbox.cli.read", "messages", "List stored messages, oldest first."),
    "show": ("sandbox.cli.read", "show", "Show one message: headers, text, journey."),
    "wait": ("sandbox.cli.read", "wait", "Block until a matching message is stored."),
    "send": ("sandbox.cli.send", "send", "Submit a message through the submission server."),
    "clear": ("sandbox.cli.read", "clear", "Delete every message."),
    "queue": ("sandbox.cli.relay_cmds", "queue", "List relay deliveries not done yet."),
    "chaos": ("sandbox.cli.relay_cmds", "chaos", "Make a domain's MX server or DNS misbehave."),
    "dns": ("sandbox.cli.dns_cmd", "dns_command", "Ask the sandbox's DNS stub."),
    "ca": ("sandbox.cli.config_cmd", "ca_command", "Path of the sandbox's CA certificate."),
    "config": ("sandbox.cli.config_cmd", "config_command", "The effective configuration."),
    "links": ("sandbox.cli.links_cmd", "links_command", "Every web URL in a message."),
    "sendmail": ("sandbox.cli.sendmail_cmd", "sendmail_command", "A drop-in sendmail."),
    "import": ("sandbox.cli.mailio_cmds", "import_command", "Import mbox, Maildir or .eml."),
    "export": ("sandbox.cli.mailio_cmds", "export_command", "Export as mbox or .eml files."),
}


class LazyGroup(click.Group):
    """A group whose commands are imported only when one is run (or its help is shown)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module, attribute, _ = entry
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command)
        return command

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[CompletionItem]:
        """Command names from the table too: a Tab press imports no command."""
        items = [
            CompletionItem(name, help=short)
            for name, (_, _, short) in COMMANDS.items()
            if name.startswith(incomplete)
        ]
        return items + click.Command.shell_complete(self, ctx, incomplete)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The group's help lists commands from the table, importing none of them."""
        with formatter.section("Commands"):
            formatter.write_dl([(name, short) for name, (_, _, short) in COMMANDS.items()])


@click.group(
    cls=LazyGroup,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@common_options
@click.version_option(__version__, prog_name=PROG)  # not importlib.metadata: 20 ms saved
@click.pass_context
def cli(ctx: click.Context, /, **kwargs: Any) -> None:
    """A local mail sandbox: catch-all SMTP for fake domains, stored in one SQLite file.

    With no command, starts every server and the TUI (as `up`).
    """
    flags = pop_common(kwargs)
    ctx.obj = {k: v for k, v in flags.items() if v is not None}
    if ctx.invoked_subcommand is None:
        from sandbox.tui.cli import run_up

        run_up(build_config(ctx, {}))


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
    except KeyboardInterrupt:
        _fail(130, "")
    except Exception as exc:
        code = _known_failure(exc)
        if code is None:
            raise
        prefix = "bad configuration: " if code == USAGE else ""
        _fail(code, f"{PROG}: {prefix}{exc}")
    sys.exit(result if isinstance(result, int) else 0)


# The sandbox's own errors, by the module that defines them: a module that was never
# imported cannot have raised one, so checking needs no import (and costs no start-up).
_KNOWN_ERRORS = (
    ("sandbox.config", "ConfigError", USAGE),
    ("sandbox.runtime", "StartupError", 1),
    ("sandbox.store", "StoreError", 1),
)


def _known_failure(exc: Exception) -> int | None:
    for module_name, class_name, code in _KNOWN_ERRORS:
        module = sys.modules.get(module_name)
        error = getattr(module, class_name, None) if module is not None else None
        if isinstance(error, type) and isinstance(exc, error):
            return code
    return None


def _fail(code: int, message: str) -> None:
    if message:
        print(" ".join(message.split()), file=sys.stderr)
    sys.exit(code)
