"""Delivery status notifications (RFC 3464 ``multipart/report``): bounces, and the delay
and success reports a client asks for with DSN (RFC 3461).

Built as bytes by hand: the ``message/delivery-status`` part is blocks of header fields
that the email package would re-fold or re-encode. The original's header block goes in a
``text/rfc822-headers`` part (RFC 3462), so the sender sees what bounced.
"""

from __future__ import annotations

import email.utils
import secrets
import time
from collections.abc import Mapping, Sequence

from sandbox.mime import header_block, summarize
from sandbox.store.dsn import DELAY, FAILURE, SUCCESS, DeliveryDsn
from sandbox.trace import rfc5322_date

# RFC 3464 §2.3.3 actions, with the human part and subject each report gets.
_WORDING = {
    "failed": (
        "Undelivered Mail Returned to Sender",
        "Your message could not be delivered to one or more recipients.",
    ),
    "delayed": (
        "Delayed Mail (still being retried)",
        "Your message could not be delivered yet to one or more recipients; the sandbox\r\n"
        "keeps trying and will tell you if it gives up.",
    ),
    "delivered": (
        "Successful Mail Delivery Report",
        "Your message was delivered to the recipients below (you asked to be told, with\r\n"
        "NOTIFY=SUCCESS).",
    ),
}


def build_dsn(
    *,
    original: bytes,
    sender: str,
    reporting_mta: str,
    failures: list[tuple[str, str]],
    remote_mta: str | None,
    arrival: float,
    now: float | None = None,
    action: str = "failed",
    ret: str | None = None,
    envid: str | None = None,
    original_recipients: Mapping[str, str | None] | None = None,
    retry_until: float | None = None,
) -> bytes:
    """A report on ``failures`` (recipient, reply) with ``action`` failed, delayed or
    delivered (RFC 3464 §2.3.3). ``ret`` FULL returns the whole message, anything else
    its headers only (RFC 3461 §4.3); ``envid`` and ``original_recipients`` (ORCPT) are
    given back as the client sent them (RFC 3464 §2.2.1, §2.3.1)."""
    now = now if now is not None else time.time()
    boundary = f"=_dsn_{secrets.token_hex(8)}"
    subject = summarize(original).subject or "(no subject)"
    title, opening = _WORDING[action]
    listed = "\r\n".join(f"    <{rcpt}>: {reply}" for rcpt, reply in failures)
    full = ret == "FULL"
    attached = "attached below" + ("" if full else " (headers only)")
    human = (
        f"This is the mail system at {reporting_mta}.\r\n\r\n"
        f"{opening} It is {attached}.\r\n"
        "This report was made by mail-sandbox; nothing left the machine.\r\n\r\n"
        f"{listed}\r\n"
    )
    per_recipient = []
    for rcpt, reply in failures:
        fields = []
        orcpt = (original_recipients or {}).get(rcpt)
        if orcpt:
            kind, _, address = orcpt.partition(";")
            fields.append(f"Original-Recipient: {kind}; {address}")
        fields += [
            f"Final-Recipient: rfc822; {rcpt}",
            f"Action: {action}",
            f"Status: {_status(reply, action)}",
        ]
        if remote_mta:
            fields.append(f"Remote-MTA: dns; {remote_mta}")
        fields += [
            f"Diagnostic-Code: smtp; {reply}",
            f"Last-Attempt-Date: {rfc5322_date(now)}",
        ]
        if retry_until is not None and action == "delayed":
            fields.append(f"Will-Retry-Until: {rfc5322_date(retry_until)}")
        per_recipient.append("\r\n".join(fields))
    envelope_id = f"Original-Envelope-Id: {envid}\r\n" if envid else ""
    status = "\r\n\r\n".join(
        [
            f"{envelope_id}Reporting-MTA: dns; {reporting_mta}\r\n"
            f"Arrival-Date: {rfc5322_date(arrival)}",
            *per_recipient,
        ]
    )
    if full:
        kind, description = (
            "message/rfc822",
            "Undelivered message" if action == "failed" else "Message",
        )
        returned = original if original.endswith(b"\r\n") else original + b"\r\n"
    else:
        kind, description = "text/rfc822-headers", "Message headers"
        returned = header_block(original).rstrip(b"\r\n") + b"\r\n"
    parts = [
        f"From: Mail Delivery System <MAILER-DAEMON@{reporting_mta}>",
        f"To: <{sender}>",
        f"Subject: {title}: {subject}",
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
        f"Content-Description: {description}",
        f"Content-Type: {kind}",
        "",
    ]
    text = "\r\n".join(parts).encode("utf-8") + b"\r\n" + returned
    return text + f"\r\n--{boundary}--\r\n".encode()


def _status(reply: str, action: str = "failed") -> str:
    """The enhanced status code of a reply (``550 5.1.1 …`` → ``5.1.1``)."""
    words = reply.split()
    if len(words) > 1 and words[1][:1] in "245" and words[1].count(".") == 2:
        return words[1]
    return {"failed": "5.0.0", "delayed": "4.0.0", "delivered": "2.0.0"}[action]


def reports_due(
    dsn: DeliveryDsn,
    *,
    delivered: Sequence[str],
    reply: str,
    first_deferral: Sequence[str],
    bounced: Sequence[tuple[str, str]],
) -> list[tuple[str, list[tuple[str, str]]]]:
    """Which reports an attempt owes the sender: (action, [(recipient, reply)]) each.

    RFC 3461 §4.1: without NOTIFY only failures are reported; NOTIFY=NEVER none; else
    the events listed. A delay is reported once, at the first deferral. The relay knows
    each MX server is the final one, so a 250 there is "delivered" (RFC 3464 §2.3.3).
    """
    due = [
        ("failed", [(r, why) for r, why in bounced if dsn.wants(r, FAILURE)]),
        ("delayed", [(r, reply) for r in first_deferral if dsn.wants(r, DELAY)]),
        ("delivered", [(r, reply) for r in delivered if dsn.wants(r, SUCCESS)]),
    ]
    return [(action, entries) for action, entries in due if entries]
