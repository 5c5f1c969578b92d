"""Trace fields every hop adds: the ``Received:`` header (RFC 5321 §4.4) and its date."""

from __future__ import annotations

import email.utils
import time
from datetime import UTC, datetime


def rfc5322_date(when: float | None = None) -> str:
    """``Mon, 23 Nov 2026 14:44:34 +0000`` (RFC 5322 §3.3; ``-0000`` would mean "unknown")."""
    moment = datetime.fromtimestamp(when if when is not None else time.time(), UTC)
    return email.utils.format_datetime(moment)


def protocol_name(*, esmtp: bool, tls: bool, auth: bool, utf8: bool) -> str:
    """The ``with`` clause: RFC 3848 (ESMTP[S][A]) and RFC 6531 §3.7.3 (UTF8SMTP…)."""
    if not esmtp:
        return "SMTP"
    base = "UTF8SMTP" if utf8 else "ESMTP"
    return base + ("S" if tls else "") + ("A" if auth else "")


def received_header(
    *,
    helo: str | None,
    peer_ip: str,
    peer_name: str | None,
    by: str,
    protocol: str,
    queue_id: str,
    recipients: list[str],
    when: float | None = None,
) -> bytes:
    """One folded header line, ready to prepend to the message."""
    tcp_info = f"{peer_name} [{peer_ip}]" if peer_name else f"[{peer_ip}]"
    lines = [
        f"Received: from {helo or 'unknown'} ({tcp_info})",
        f"\tby {by} (mail-sandbox) with {protocol} id {queue_id}",
    ]
    date = rfc5322_date(when)
    # RFC 5321 §7.6: name the recipient only when there is exactly one, so a Bcc list
    # is not revealed to every recipient.
    if len(recipients) == 1:
        lines.append(f"\tfor <{recipients[0]}>; {date}")
    else:
        lines[-1] += ";"
        lines.append(f"\t{date}")
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def local_received_header(
    *, by: str, queue_id: str, recipients: list[str], when: float | None = None
) -> bytes:
    """For mail the sandbox makes itself (bounces): no client, so no ``from`` clause."""
    date = rfc5322_date(when)
    rcpt = f"\r\n\tfor <{recipients[0]}>" if len(recipients) == 1 else ""
    return f"Received: by {by} (mail-sandbox) id {queue_id}{rcpt}; {date}\r\n".encode()
