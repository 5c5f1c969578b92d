"""``mail-sandbox sendmail``: the drop-in sendmail of ``sandbox.sendmail`` as a command.

Its flags are sendmail's, not click's (``-fme@x``, ``-oi``, ``-odi``, ``-B8BITMIME``), so
the command takes its arguments as they came and parses them itself. Exit codes are
sendmail's (sysexits.h: 64 usage, 69 nothing listening, 75 try later, …), not 2/1.
"""

from __future__ import annotations

import sys

import click

from sandbox.cli.errors import CliExit
from sandbox.sendmail import SendmailError, run


class _RawArguments(click.Command):
    """Keep every argument for the callback; click's option parsing would mangle them."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["sendmail.args"] = list(args)
        return super().parse_args(ctx, [])


@click.command(
    "sendmail",
    cls=_RawArguments,
    add_help_option=False,
    options_metavar="[-t] [-i] [-f FROM] [-F NAME] [RCPT ...]",
    context_settings={"help_option_names": []},
)
@click.pass_context
def sendmail_command(ctx: click.Context, /) -> None:
    """A drop-in sendmail: reads a message on stdin and submits it to the sandbox.

    \b
      -t          recipients from To, Cc and Bcc (added to RCPT); Bcc is removed
      -i, -oi     a line with a lone dot does not end the message
      -f FROM     envelope sender (also -fFROM, -r); default: the From header's address
      -F NAME     full name for the From header made when there is none
      --smtp-port N, --host IP, --config FILE   where the sandbox listens
    Ignored as sendmail callers pass them: -v -m -n -U -G -bm -od* -oe* -om -B -N -R -V
    -A -L -O -h. Adds From, Date and Message-ID when missing.
    Exit codes (sysexits.h): 0 sent, 64 bad usage or no recipients, 65 message refused,
    67 recipient refused, 69 no sandbox listening, 75 temporary failure, 78 bad config.

    \b
    php.ini:       sendmail_path = "mail-sandbox sendmail -t -i"
    git:           git send-email --sendmail-cmd="mail-sandbox sendmail" ...
    cron (cronie): crond -m "mail-sandbox sendmail -t"
    """
    args: list[str] = ctx.meta.get("sendmail.args", [])
    base = {k: v for k, v in (ctx.obj or {}).items() if k in ("config_file", "host", "smtp.port")}
    try:
        invocation, reply = run(args, sys.stdin.buffer, base)
    except SendmailError as exc:
        raise CliExit(exc.code, f"sendmail: {exc.message}") from None
    if invocation.help:
        click.echo(ctx.get_help())
    elif invocation.verbose:
        click.echo(f"sent: {reply}", err=True)
