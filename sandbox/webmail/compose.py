"""Compose, reply and forward: a message built here, submitted like any app's.

Sending goes to the sandbox's submission server with SMTP AUTH as the logged-in user
(RFC 6409), so the message takes the whole journey: DKIM signing, the Sent copy, the
relay, DNS, the recipient's MX server.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, getaddresses, make_msgid

import aiosmtplib

from sandbox.mime import parse

MAX_RECIPIENTS = 100


class ComposeError(ValueError):
    """The form cannot become a message; the text says what to change."""


@dataclass(frozen=True)
class Draft:
    sender: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    subject: str
    body: str
    in_reply_to: bytes | None = None  # the original, when replying
    forward: bytes | None = None  # the original, attached, when forwarding


def recipients(field: str) -> tuple[str, ...]:
    """``"Ann <ann@beta.test>, bob@gamma.test"`` → the addresses; refuses what is not one."""
    found = []
    for name, address in getaddresses([field]):
        if not address:
            continue
        local, at, domain = address.rpartition("@")
        if not at or not local or "." not in domain or any(c in address for c in " \r\n"):
            raise ComposeError(f"{address!r} is not an email address (write local@domain)")
        found.append(address if not name else f"{name} <{address}>")
    return tuple(found)


def build(draft: Draft, hostname: str) -> EmailMessage:
    if not draft.to and not draft.cc:
        raise ComposeError("add at least one recipient in To or Cc")
    if len(draft.to) + len(draft.cc) > MAX_RECIPIENTS:
        raise ComposeError(f"at most {MAX_RECIPIENTS} recipients per message")
    for text in (draft.subject, *draft.to, *draft.cc):
        if "\r" in text or "\n" in text:
            raise ComposeError("line breaks are not allowed in the subject or addresses")
    message = EmailMessage()
    message["From"] = draft.sender
    if draft.to:
        message["To"] = ", ".join(draft.to)
    if draft.cc:
        message["Cc"] = ", ".join(draft.cc)
    message["Subject"] = draft.subject
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain=draft.sender.rpartition("@")[2] or hostname)
    message["User-Agent"] = "mail-sandbox webmail"
    if draft.in_reply_to is not None:
        original = parse(draft.in_reply_to)
        parent = original.get("message-id")
        if parent:
            # RFC 5322 §3.6.4: References is the parent's References plus its Message-ID.
            refs = " ".join([*str(original.get("references", "")).split(), str(parent).strip()])
            message["In-Reply-To"] = str(parent).strip()
            message["References"] = refs
    message.set_content(draft.body)
    if draft.forward is not None:
        message.add_attachment(
            parse(draft.forward), filename="forwarded.eml", disposition="attachment"
        )
    return message


def reply_subject(subject: str) -> str:
    return subject if subject.lower().startswith("re:") else f"Re: {subject}"


def forward_subject(subject: str) -> str:
    return subject if subject.lower().startswith("fwd:") else f"Fwd: {subject}"


def envelope_recipients(draft: Draft) -> list[str]:
    return [address for _, address in getaddresses([*draft.to, *draft.cc])]


async def submit(
    message: EmailMessage,
    recipients: Sequence[str],
    *,
    host: str,
    port: int,
    user: str,
    password: str,
    tls: ssl.SSLContext | None,
) -> str:
    """Submit with AUTH (STARTTLS first when the server offers it); the server's reply."""
    try:
        errors, reply = await aiosmtplib.send(
            message,
            sender=user,
            recipients=list(recipients),
            hostname=host,
            port=port,
            username=user,
            password=password or "-",
            start_tls=None if tls is not None else False,
            tls_context=tls,
            timeout=30,
        )
    except aiosmtplib.SMTPException as exc:
        raise ComposeError(f"the submission server refused the message: {exc}") from exc
    except OSError as exc:
        raise ComposeError(f"cannot reach the submission server at {host}:{port}: {exc}") from exc
    if errors:
        refused = ", ".join(f"{rcpt} ({err.message})" for rcpt, err in errors.items())
        raise ComposeError(f"refused recipients: {refused}")
    return str(reply)
