"""``mail-sandbox send``: submit a message through the running submission server."""

from __future__ import annotations

import mimetypes
import smtplib
import sys
from email import policy
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

import click

from sandbox.cli.errors import bad_input, failure
from sandbox.cli.options import build_config, common_options, pop_common, sandbox_address

SEND_TIMEOUT = 30.0


@click.command()
@click.option("--from", "sender", metavar="ADDRESS", required=True, help="Sender address.")
@click.option(
    "--to",
    "recipients",
    metavar="ADDRESS",
    required=True,
    multiple=True,
    help="Recipient; repeat for several.",
)
@click.option("--subject", default="Test message from mail-sandbox", show_default=True)
@click.option(
    "--body",
    metavar="TEXT",
    default="Sent with mail-sandbox send.",
    help="Body text; '-' reads it from stdin.",
)
@click.option(
    "--attach",
    "attachments",
    metavar="FILE",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Attach a file; repeat for several.",
)
@common_options
@click.pass_context
def send(
    ctx: click.Context,
    /,
    sender: str,
    recipients: tuple[str, ...],
    subject: str,
    body: str,
    attachments: tuple[Path, ...],
    **kwargs: Any,
) -> None:
    """Send a message through the sandbox's submission server."""
    config = build_config(ctx, pop_common(kwargs))
    for address in (sender, *recipients):
        if "@" not in address.strip("<>"):
            raise bad_input(f"{address!r} is not an email address like name@alpha.test")
    text = sys.stdin.read() if body == "-" else body
    message = build_message(sender, recipients, subject, text, attachments)
    reply = submit(sandbox_address(ctx, config, "smtp"), message, sender, list(recipients))
    click.echo(f"sent to {len(recipients)} recipient{'s' if len(recipients) != 1 else ''}: {reply}")


def build_message(
    sender: str, recipients: tuple[str, ...], subject: str, body: str, attachments: tuple[Path, ...]
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2].strip("<>") or None)
    message.set_content(body)
    for path in attachments:
        ctype, _ = mimetypes.guess_type(path.name)
        maintype, _, subtype = (ctype or "application/octet-stream").partition("/")
        message.add_attachment(
            path.read_bytes(), maintype=maintype, subtype=subtype, filename=path.name
        )
    return message


def submit(
    where: tuple[str, int], message: EmailMessage, sender: str, recipients: list[str]
) -> str:
    """Send over SMTP and return the server's final reply (it names the queue id)."""
    host, port = where
    if port == 0:
        raise bad_input("--smtp-port 0 means 'any free port' for serve; give the port it printed")
    utf8 = not all(a.isascii() for a in (sender, *recipients, str(message)))
    raw = message.as_bytes(policy=policy.SMTPUTF8 if utf8 else policy.SMTP)
    try:
        with smtplib.SMTP(host, port, timeout=SEND_TIMEOUT) as client:
            client.ehlo("mail-sandbox-cli")
            options = ["SMTPUTF8", "BODY=8BITMIME"] if utf8 else []
            code, text = client.mail(sender, options)
            if code != 250:
                raise smtplib.SMTPSenderRefused(code, text, sender)
            refused = {}
            for rcpt in recipients:
                code, text = client.rcpt(rcpt)
                if code not in (250, 251):
                    refused[rcpt] = (code, text)
            if refused:
                raise smtplib.SMTPRecipientsRefused(refused)
            code, text = client.data(raw)
            return f"{code} {text.decode(errors='replace')}"
    except smtplib.SMTPException as exc:
        raise failure(f"the sandbox refused the message: {_smtp_error(exc)}") from None
    except OSError as exc:
        raise failure(
            f"cannot reach the sandbox at {host}:{port} ({exc.strerror or exc}): it is not"
            " running or has stopped; start it with `mail-sandbox serve`, or pass --smtp-port"
        ) from None


def _smtp_error(exc: smtplib.SMTPException) -> str:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "; ".join(
            f"{rcpt}: {code} {_text(msg)}" for rcpt, (code, msg) in exc.recipients.items()
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{exc.smtp_code} {_text(exc.smtp_error)}"
    return str(exc)


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value
