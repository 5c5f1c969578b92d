"""The ``Received:`` trace header every hop adds (RFC 5321 §4.4)."""

from __future__ import annotations

import email.utils
import time


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
    date = email.utils.formatdate(when if when is not None else time.time(), localtime=False)
    # RFC 5321 §7.6: name the recipient only when there is exactly one, so a Bcc list
    # is not revealed to every recipient.
    if len(recipients) == 1:
        lines.append(f"\tfor <{recipients[0]}>; {date}")
    else:
        lines[-1] += ";"
        lines.append(f"\t{date}")
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")
