"""Bounces: a real delivery status notification (RFC 3464 ``multipart/report``).

Built as bytes by hand: the ``message/delivery-status`` part is blocks of header fields
that the email package would re-fold or re-encode. The original's header block goes in a
``text/rfc822-headers`` part (RFC 3462), so the sender sees what bounced.
"""

from __future__ import annotations

import email.utils
import secrets
import time

from sandbox.mime import header_block, summarize
from sandbox.trace import rfc5322_date


def build_dsn(
    *,
    original: bytes,
    sender: str,
    reporting_mta: str,
    failures: list[tuple[str, str]],
    remote_mta: str | None,
    arrival: float,
    now: float | None = None,
) -> bytes:
    now = now if now is not None else time.time()
    boundary = f"=_dsn_{secrets.token_hex(8)}"
    subject = summarize(original).subject or "(no subject)"
    failed = "\r\n".join(f"    <{rcpt}>: {reply}" for rcpt, reply in failures)
    human = (
        f"This is the mail system at {reporting_mta}.\r\n\r\n"
        "Your message could not be delivered to one or more recipients. It is attached\r\n"
        "below (headers only). This bounce was made by mail-sandbox; nothing left the\r\n"
        "machine.\r\n\r\n"
        f"{failed}\r\n"
    )
    per_recipient = []
    for rcpt, reply in failures:
        fields = [
            f"Final-Recipient: rfc822; {rcpt}",
            "Action: failed",
            f"Status: {_status(reply)}",
        ]
        if remote_mta:
            fields.append(f"Remote-MTA: dns; {remote_mta}")
        fields += [
            f"Diagnostic-Code: smtp; {reply}",
            f"Last-Attempt-Date: {rfc5322_date(now)}",
        ]
        per_recipient.append("\r\n".join(fields))
    status = "\r\n\r\n".join(
        [
            f"Reporting-MTA: dns; {reporting_mta}\r\nArrival-Date: {rfc5322_date(arrival)}",
            *per_recipient,
        ]
    )
    headers = header_block(original).rstrip(b"\r\n") + b"\r\n"
    parts = [
        f"From: Mail Delivery System <MAILER-DAEMON@{reporting_mta}>",
        f"To: <{sender}>",
        f"Subject: Undelivered Mail Returned to Sender: {subject}",
        f"Date: {rfc5322_date(now)}",
        f"Message-ID: {email.utils.make_msgid(domain=reporting_mta)}",
        "Auto-Submitted: auto-replied",  # RFC 3834: never answer this automatically
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
        "",
        "This is a MIME-encapsulated delivery status notification.",
        "",
        f"--{boundary}",
        "Content-Description: Notification",
        "Content-Type: text/plain; charset=utf-8",
        "",
        human,
        f"--{boundary}",
        "Content-Description: Delivery report",
        "Content-Type: message/delivery-status",
        "",
        status,
        "",
        f"--{boundary}",
        "Content-Description: Undelivered message headers",
        "Content-Type: text/rfc822-headers",
        "",
    ]
    text = "\r\n".join(parts).encode("utf-8") + b"\r\n" + headers
    return text + f"\r\n--{boundary}--\r\n".encode()


def _status(reply: str) -> str:
    """The enhanced status code of a reply (``550 5.1.1 …`` → ``5.1.1``)."""
    words = reply.split()
    if len(words) > 1 and words[1][:1] in "245" and words[1].count(".") == 2:
        return words[1]
    return "5.0.0"
