"""Mailpit's and MailHog's JSON shapes: their field names, capitals and all, live here
only. Compatibility with their clients is a contract; each shape has its own test.

A parsed message is cached by its raw message id (raw messages never change), so a page
of 50 summaries costs 50 parses once, not on every request.
"""

from __future__ import annotations

import email.utils
import hashlib
import re
from collections import OrderedDict
from dataclasses import dataclass
from email.message import Message as EmailPart
from typing import Any

from sandbox.auth.verdicts import read_verdicts
from sandbox.mime import decoded_text, header_block, iso_utc, parse
from sandbox.store.http_views import SummaryRow

SNIPPET_LENGTH = 250
CACHE_SIZE = 4096
CACHE_BODY_LIMIT = 64 * 1024  # characters of text and HTML a cached message may hold


@dataclass(frozen=True)
class Part:
    """One MIME leaf part with its Mailpit PartID (``1``, ``2.1``, … as enmime numbers)."""

    part_id: str
    content_type: str
    filename: str
    content_id: str
    size: int
    inline: bool  # shown in the body (an image referenced by Content-ID)
    attachment: bool
    md5: str
    sha1: str
    sha256: str


@dataclass(frozen=True)
class Parsed:
    """What the serialisers need from a raw message, read once."""

    sender: tuple[str, str] | None  # (name, address)
    to: tuple[tuple[str, str], ...]
    cc: tuple[tuple[str, str], ...]
    reply_to: tuple[tuple[str, str], ...]
    return_path: str
    date: str
    text: str
    html: str
    parts: tuple[Part, ...]
    list_unsubscribe: str
    list_unsubscribe_post: str
    # The sandbox's ``auth`` JSON (SPF/DKIM/DMARC/ARC verdicts of the receiving MX), or None.
    auth: dict[str, Any] | None = None

    @property
    def attachments(self) -> tuple[Part, ...]:
        return tuple(p for p in self.parts if p.attachment)

    @property
    def inline(self) -> tuple[Part, ...]:
        return tuple(p for p in self.parts if p.inline)

    @property
    def snippet(self) -> str:
        source = self.text or _html_text(self.html)
        return " ".join(source.split())[:SNIPPET_LENGTH]


class ParseCache:
    """Parsed messages by raw message id, least recently used out first."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self._size = size
        self._items: OrderedDict[int, Parsed] = OrderedDict()

    def get(self, message_id: int, raw: bytes) -> Parsed:
        found = self._items.get(message_id)
        if found is not None:
            self._items.move_to_end(message_id)
            return found
        parsed = parse_message(raw)
        if len(parsed.text) + len(parsed.html) > CACHE_BODY_LIMIT:
            return parsed  # a huge body is parsed again when asked for, not kept
        self._items[message_id] = parsed
        if len(self._items) > self._size:
            self._items.popitem(last=False)
        return parsed

    def known(self, message_id: int) -> bool:
        return message_id in self._items


def _html_text(html: str) -> str:
    if not html:
        return ""
    from inscriptis import get_text

    return str(get_text(html))


def _addresses(part: EmailPart, name: str) -> tuple[tuple[str, str], ...]:
    values = [str(v) for v in part.get_all(name, [])]
    try:
        pairs = email.utils.getaddresses(values)
    except (TypeError, ValueError, IndexError):
        return ()
    return tuple((n, a) for n, a in pairs if a)


def _header(part: EmailPart, name: str) -> str:
    try:
        value = part.get(name)
    except Exception:  # a malformed header: as if absent
        return ""
    return " ".join(str(value).split()) if value is not None else ""


def iter_parts(message: EmailPart, prefix: str = "") -> list[tuple[str, EmailPart]]:
    """Leaf parts with their PartIDs: children of a multipart are 1, 2, …; nested 2.1."""
    if not message.is_multipart():
        return [(prefix or "1", message)]
    found: list[tuple[str, EmailPart]] = []
    payload = message.get_payload()
    children = payload if isinstance(payload, list) else []
    for index, child in enumerate(children, start=1):
        if not isinstance(child, EmailPart):
            continue
        part_id = f"{prefix}.{index}" if prefix else str(index)
        if child.is_multipart():
            found += iter_parts(child, part_id)
        else:
            found.append((part_id, child))
    return found


def part_data(part: EmailPart) -> bytes:
    if part.get_content_type() == "message/rfc822":
        inner = part.get_payload()
        first = inner[0] if isinstance(inner, list) and inner else None
        return first.as_bytes() if isinstance(first, EmailPart) else b""
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def find_part(raw: bytes, part_id: str) -> tuple[str, str, bytes] | None:
    """(content type, file name, decoded bytes) of one part, or None."""
    for found_id, part in iter_parts(parse(raw)):
        if found_id == part_id:
            return part.get_content_type(), part.get_filename() or "", part_data(part)
    return None


def parse_message(raw: bytes) -> Parsed:
    message = parse(raw)
    text = html = ""
    parts: list[Part] = []
    for part_id, part in iter_parts(message):
        ctype = part.get_content_type()
        disposition = part.get_content_disposition()
        filename = part.get_filename() or ""
        content_id = _header(part, "Content-ID").strip("<>")
        is_attachment = disposition == "attachment" or (
            bool(filename) and not ctype.startswith("text/") and not content_id
        )
        if not is_attachment and ctype == "text/plain" and not text and disposition != "inline":
            text = decoded_text(part)
            continue
        if not is_attachment and ctype == "text/html" and not html:
            html = decoded_text(part)
            continue
        if not is_attachment and ctype == "text/plain" and not text:
            text = decoded_text(part)
            continue
        if ctype.startswith("multipart/"):
            continue
        data = part_data(part)
        parts.append(
            Part(
                part_id=part_id,
                content_type=ctype,
                filename=filename,
                content_id=content_id,
                size=len(data),
                inline=not is_attachment,
                attachment=is_attachment,
                md5=hashlib.md5(data).hexdigest(),
                sha1=hashlib.sha1(data).hexdigest(),
                sha256=hashlib.sha256(data).hexdigest(),
            )
        )
    senders = _addresses(message, "From")
    date = _header(message, "Date")
    try:
        parsed_date = email.utils.parsedate_to_datetime(date).isoformat() if date else ""
    except (TypeError, ValueError, IndexError):
        parsed_date = ""
    return Parsed(
        sender=senders[0] if senders else None,
        to=_addresses(message, "To"),
        cc=_addresses(message, "Cc"),
        reply_to=_addresses(message, "Reply-To"),
        return_path=_header(message, "Return-Path").strip("<>"),
        date=parsed_date,
        text=text.replace("\r\n", "\n"),
        html=html.replace("\r\n", "\n"),
        parts=tuple(parts),
        list_unsubscribe=_header(message, "List-Unsubscribe"),
        list_unsubscribe_post=_header(message, "List-Unsubscribe-Post"),
        auth=auth_json(raw),
    )


def auth_json(raw: bytes) -> dict[str, Any] | None:
    """The verdicts from the receiving MX's ``Authentication-Results`` (None: unchecked)."""
    verdicts = read_verdicts(raw)
    return verdicts.as_json() if verdicts is not None else None


# --- Mailpit ----------------------------------------------------------------------------


def address(pair: tuple[str, str]) -> dict[str, str]:
    return {"Name": pair[0], "Address": pair[1]}


def _sender(row: SummaryRow, parsed: Parsed) -> dict[str, str]:
    if parsed.sender is not None:
        return address(parsed.sender)
    return {"Name": "", "Address": row.envelope_from}


def _bcc(row: SummaryRow, parsed: Parsed) -> list[dict[str, str]]:
    """Envelope recipients no To or Cc header names (as Mailpit shows them)."""
    named = {a.lower() for _, a in (*parsed.to, *parsed.cc)}
    return [address(("", rcpt)) for rcpt in row.envelope_to if rcpt.lower() not in named]


def message_summary(row: SummaryRow, parsed: Parsed) -> dict[str, Any]:
    """Mailpit's ``MessageSummary``: one entry of a list or search answer, and the
    ``Data`` of a ``new`` event."""
    return {
        "ID": str(row.id),
        "MessageID": (row.header_message_id or "").strip("<>"),
        "Read": row.read,
        "From": _sender(row, parsed),
        "To": [address(a) for a in parsed.to],
        "Cc": [address(a) for a in parsed.cc],
        "Bcc": _bcc(row, parsed),
        "ReplyTo": [address(a) for a in parsed.reply_to],
        "Subject": row.subject or "",
        "Created": iso_utc(row.received_at),
        "Username": "",
        "Tags": list(row.tags),
        "Size": row.size,
        "Attachments": len(parsed.attachments),
        "Snippet": parsed.snippet,
    }


def attachment(part: Part) -> dict[str, Any]:
    return {
        "PartID": part.part_id,
        "FileName": part.filename,
        "ContentType": part.content_type,
        "ContentID": part.content_id,
        "Size": part.size,
        "Checksums": {"MD5": part.md5, "SHA1": part.sha1, "SHA256": part.sha256},
    }


_LINK = re.compile(r"<([^>]+)>")


def message(row: SummaryRow, parsed: Parsed) -> dict[str, Any]:
    """Mailpit's ``Message``: everything about one message (``Read`` as older Mailpit
    releases sent it, which PyPI's mailpit-api-client still requires)."""
    return {
        "ID": str(row.id),
        "MessageID": (row.header_message_id or "").strip("<>"),
        "Read": row.read,
        "From": _sender(row, parsed),
        "To": [address(a) for a in parsed.to],
        "Cc": [address(a) for a in parsed.cc],
        "Bcc": _bcc(row, parsed),
        "ReplyTo": [address(a) for a in parsed.reply_to],
        "ReturnPath": parsed.return_path or row.envelope_from,
        "Subject": row.subject or "",
        "ListUnsubscribe": {
            "Header": parsed.list_unsubscribe,
            "Links": _LINK.findall(parsed.list_unsubscribe),
            "Errors": "",
            "HeaderPost": parsed.list_unsubscribe_post,
        },
        "Date": parsed.date or iso_utc(row.received_at),
        "Tags": list(row.tags),
        "Username": "",
        "Text": parsed.text,
        "HTML": parsed.html,
        "Size": row.size,
        "Inline": [attachment(p) for p in parsed.inline],
        "Attachments": [attachment(p) for p in parsed.attachments],
        # The sandbox's own: Mailpit's clients ignore fields they do not know.
        "Auth": parsed.auth,
    }


def messages_list(
    rows: list[dict[str, Any]],
    *,
    total: int,
    unread: int,
    matching: int,
    start: int,
    tags: list[str],
) -> dict[str, Any]:
    """Mailpit's ``MessagesSummary`` (list and search answers)."""
    return {
        "total": total,
        "unread": unread,
        "count": len(rows),  # undocumented in Mailpit's specs, kept for older clients
        "messages_count": matching,
        "messages_unread": sum(1 for r in rows if not r["Read"]),
        "start": start,
        "tags": tags,
        "messages": rows,
    }


def canonical_header(name: str) -> str:
    """``content-type`` → ``Content-Type``, as Go's textproto spells header keys."""
    return "-".join(word[:1].upper() + word[1:].lower() for word in name.split("-"))


def headers(raw: bytes, mailbox: str) -> dict[str, list[str]]:
    """Mailpit's headers answer: every header name (sorted) with its values in order.

    ``Delivered-To`` names the copy's mailbox when the message has none, as a delivery
    agent adds it (PyPI's mailpit-api-client requires the field); the raw source stays
    byte for byte as received.
    """
    message = parse(header_block(raw))
    result: dict[str, list[str]] = {}
    for name, value in message.raw_items():
        try:
            text = str(message.policy.header_fetch_parse(name, value))
        except Exception:  # a malformed header: as it came
            text = str(value)
        result.setdefault(canonical_header(name), []).append(" ".join(text.split()))
    result.setdefault("Delivered-To", [mailbox])
    return dict(sorted(result.items()))


def event(kind: str, data: Any) -> dict[str, Any]:
    """One message of the ``/api/events`` WebSocket."""
    return {"Type": kind, "Data": data}


def info(
    *,
    version: str,
    database: str,
    size: int,
    total: int,
    unread: int,
    tags: dict[str, int],
    uptime: int,
    memory: int,
    accepted: int,
    accepted_size: int,
    rejected: int,
    deleted: int,
) -> dict[str, Any]:
    """Mailpit's ``AppInformation``."""
    return {
        "Version": version,
        "LatestVersion": version,  # never asks the internet for a newer release
        "Database": database,
        "DatabaseSize": size,
        "Messages": total,
        "Unread": unread,
        "Tags": tags,
        "RuntimeStats": {
            "Uptime": uptime,
            "Memory": memory,
            "MessagesDeleted": deleted,
            "SMTPAccepted": accepted,
            "SMTPAcceptedSize": accepted_size,
            "SMTPRejected": rejected,
            "SMTPIgnored": 0,
        },
    }


def webui(*, label: str, smtp: str) -> dict[str, Any]:
    """Mailpit's ``WebUIConfiguration``; its relay is the sandbox's own (fake domains)."""
    return {
        "Label": label,
        "MessageRelay": {
            "Enabled": True,
            "SMTPServer": smtp,
            "ReturnPath": "",
            "AllowedRecipients": "",
            "BlockedRecipients": "",
            "OverrideFrom": "",
            "PreserveMessageIDs": False,
        },
        "SpamAssassin": False,
        "ChaosEnabled": False,
        "DuplicatesIgnored": False,
        "HideDeleteAllButton": False,
    }


# --- MailHog ----------------------------------------------------------------------------


def _mailhog_path(addr: str) -> dict[str, Any]:
    local, _, domain = addr.rpartition("@")
    return {"Relays": None, "Mailbox": local, "Domain": domain, "Params": ""}


def _mailhog_content(part: EmailPart, body: str, size: int) -> dict[str, Any]:
    names: dict[str, list[str]] = {}
    for name, value in part.raw_items():
        names.setdefault(canonical_header(name), []).append(" ".join(str(value).split()))
    mime = None
    if part.is_multipart():
        children = part.get_payload()
        mime = {
            "Parts": [
                _mailhog_part(child)
                for child in (children if isinstance(children, list) else [])
                if isinstance(child, EmailPart)
            ]
        }
    return {"Headers": names, "Body": body, "Size": size, "MIME": mime}


def _body_text(part: EmailPart) -> str:
    """The encoded body as it travelled (MailHog hands clients the transfer encoding)."""
    raw = part.as_bytes()
    for sep in (b"\r\n\r\n", b"\n\n"):
        end = raw.find(sep)
        if end != -1:
            return raw[end + len(sep) :].decode("utf-8", "replace")
    return ""


def _mailhog_part(part: EmailPart) -> dict[str, Any]:
    body = _body_text(part)
    return _mailhog_content(part, body, len(body.encode()))


def mailhog_message(row: SummaryRow, raw: bytes) -> dict[str, Any]:
    """MailHog's v2 message: envelope, headers, body and the MIME tree."""
    parsed = parse(raw)
    body = _body_text(parsed) if not parsed.is_multipart() else raw[len(header_block(raw)) :]
    body_text = body if isinstance(body, str) else body.decode("utf-8", "replace")
    content = _mailhog_content(parsed, body_text, len(raw))
    mime = content.pop("MIME")
    content["MIME"] = None
    return {
        "ID": str(row.id),
        "From": _mailhog_path(row.envelope_from),
        "To": [_mailhog_path(rcpt) for rcpt in row.envelope_to],
        "Content": content,
        "Created": iso_utc(row.received_at),
        "MIME": mime,
        "Raw": {
            "From": row.envelope_from,
            "To": list(row.envelope_to),
            "Data": raw.decode("utf-8", "replace"),
            "Helo": "",
        },
    }


def mailhog_list(items: list[dict[str, Any]], *, total: int, start: int) -> dict[str, Any]:
    return {"total": total, "count": len(items), "start": start, "items": items}
