"""SMTP replies: enhanced status codes on every reply that needs one.

RFC 2034 §3: once ENHANCEDSTATUSCODES is advertised, every 2xx/4xx/5xx reply except the
greeting and the HELO/EHLO replies carries an RFC 3463 code. aiosmtpd writes many replies
without one, so they are filled in here, in one place, by the basic code.
"""

from __future__ import annotations

import re

_HAS_ENHANCED = re.compile(r"^\d{3}[ -][245]\.\d{1,3}\.\d{1,3}(\s|$)")
_BY_CODE = {
    "211": "2.0.0",
    "214": "2.0.0",
    "220": "2.0.0",
    "221": "2.0.0",
    "235": "2.7.0",
    "250": "2.0.0",
    "251": "2.1.5",
    "252": "2.5.0",
    "421": "4.3.2",
    "450": "4.2.0",
    "451": "4.3.0",
    "452": "4.5.3",
    "454": "4.7.0",
    "500": "5.5.2",
    "501": "5.5.4",
    "502": "5.5.1",
    "503": "5.5.1",
    "504": "5.5.4",
    "530": "5.7.0",
    "534": "5.7.9",
    "535": "5.7.8",
    "538": "5.7.11",
    "550": "5.1.1",
    "551": "5.1.6",
    "552": "5.3.4",
    "553": "5.1.3",
    "554": "5.0.0",
    "555": "5.5.4",
}


def with_enhanced_code(reply: str) -> str:
    """``"503 Error: need MAIL command"`` → ``"503 5.5.1 Error: need MAIL command"``."""
    if len(reply) < 3 or reply[0] not in "245" or _HAS_ENHANCED.match(reply):
        return reply
    code, sep, text = reply[:3], reply[3:4], reply[4:]
    enhanced = _BY_CODE.get(code, f"{reply[0]}.0.0")
    return f"{code}{sep or ' '}{enhanced} {text}".rstrip()


def too_big(limit: int) -> str:
    return (
        f"552 5.3.4 Message too big: this sandbox takes up to {limit} bytes"
        " (raise smtp.max_message_size)"
    )
