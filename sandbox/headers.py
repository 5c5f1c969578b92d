"""Header fields the servers add on the way, as production servers do.

``Return-Path:`` at final delivery (RFC 5321 §4.4: the delivering server MUST add it,
with the envelope sender; a relay SHOULD NOT send it on), and ``Date:`` and
``Message-ID:`` that a submission server adds to a message that lacks them
(RFC 6409 §8.2, §8.3).
"""

from __future__ import annotations

import re
import secrets

from sandbox.mime import header_block
from sandbox.trace import rfc5322_date

_HAS_DATE = re.compile(rb"(?:^|\n)date[ \t]*:", re.IGNORECASE)
_HAS_MESSAGE_ID = re.compile(rb"(?:^|\n)message-id[ \t]*:", re.IGNORECASE)
_FIELD = re.compile(rb"[!-9;-~]+[ \t]*:")  # RFC 5322 §2.2 field name


def return_path(sender: str) -> bytes:
    """``Return-Path: <sender>`` (``<>`` for a bounce), to put before everything else."""
    return f"Return-Path: <{sender}>\r\n".encode()


def complete_submission(content: bytes, *, hostname: str, when: float | None = None) -> bytes:
    """Add ``Date:`` and ``Message-ID:`` when the header block has none (RFC 6409 §8).

    The fields go at the end of the header block, as postfix's cleanup puts them, so
    signatures over the existing fields stay valid.
    """
    headers = header_block(content)
    added = b""
    if not _HAS_DATE.search(headers):
        added += f"Date: {rfc5322_date(when)}\r\n".encode()
    if not _HAS_MESSAGE_ID.search(headers):
        added += f"Message-ID: <{secrets.token_hex(12)}@{hostname}>\r\n".encode()
    if not added:
        return content
    if headers != content:  # a header block, then the body
        cut = len(headers) - (2 if headers.endswith(b"\r\n\r\n") else 1)
        return content[:cut] + added + content[cut:]
    if _FIELD.match(content):  # headers only, no body
        return content.rstrip(b"\r\n") + b"\r\n" + added if content.strip() else added
    return added + b"\r\n" + content  # no header at all: what came is the body
