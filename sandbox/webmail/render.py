"""A message's bytes as the page shows them: pure functions, no IMAP, no HTTP.

Nothing here builds HTML for the page: the page puts every value into the document as
text. The one exception is the message's own HTML part, which only ever goes into the
sandboxed frame, under the policy ``html_policy`` returns.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from email.message import Message
from email.utils import getaddresses
from typing import Any

from sandbox.auth.verdicts import read_verdicts
from sandbox.links import links_in
from sandbox.mime import body_parts, parse, readable_text

INLINE_IMAGE_LIMIT = 2 * 1024 * 1024  # cid: images up to this size are inlined as data:
_REMOTE = re.compile(
    r"""(?:\b(?:src|background|poster|srcset)\s*=\s*["']?\s*|url\(\s*["']?\s*)(?:https?:)?//""",
    re.IGNORECASE,
)
# CSP cannot stop a frame navigating itself; a refresh would do it without a click.
_META_REFRESH = re.compile(r"""<meta\b[^>]*http-equiv\s*=\s*["']?\s*refresh[^>]*>""", re.IGNORECASE)
_CID = re.compile(r"""cid:([^"'\s)>]+)""", re.IGNORECASE)


@dataclass(frozen=True)
class Attachment:
    index: int
    filename: str
    content_type: str
    size: int
    part: Message


def attachments(raw: bytes) -> list[Attachment]:
    """Attached files, and attached messages (message/rfc822), in MIME order."""
    found: list[Attachment] = []
    message = parse(raw)
    for part in _walk(message):
        ctype = part.get_content_type()
        if ctype == "message/rfc822" and part is not message:
            name = part.get_filename() or "message.eml"
        elif part.is_multipart():
            continue
        elif part.get_content_disposition() == "attachment" or (
            part.get_filename() is not None and not ctype.startswith("text/")
        ):
            name = part.get_filename() or f"part-{len(found) + 1}"
        else:
            continue
        found.append(Attachment(len(found), name, ctype, len(attachment_bytes(part)), part))
    return found


def _walk(message: Message) -> list[Message]:
    """Every part, but not inside an attached message (that is one attachment)."""
    parts = [message]
    if message.is_multipart():
        children = message.get_payload()
        if isinstance(children, list):
            for child in children:
                if not isinstance(child, Message):
                    continue
                if child.get_content_type() == "message/rfc822":
                    parts.append(child)
                else:
                    parts += _walk(child)
    return parts


def attachment_bytes(part: Message) -> bytes:
    """The file exactly as it was attached (transfer encoding undone)."""
    if part.get_content_type() == "message/rfc822":
        inner = part.get_payload()
        first = inner[0] if isinstance(inner, list) and inner else None
        return first.as_bytes() if isinstance(first, Message) else b""
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def header_fields(message: Message) -> list[tuple[str, str]]:
    fields = []
    for name, value in message.raw_items():
        try:
            text = str(message.policy.header_fetch_parse(name, value))
        except Exception:  # a malformed header still shows, as it came
            text = str(value)
        fields.append((name, " ".join(text.split())))
    return fields


def addresses(values: list[str]) -> list[dict[str, str]]:
    return [{"name": name, "address": addr} for name, addr in getaddresses(values) if addr]


def summary(header: bytes) -> dict[str, Any]:
    """A list row from the header fields FETCH brought."""
    message = parse(header)
    return {
        "from": addresses(message.get_all("from") or []),
        "to": addresses(message.get_all("to") or []),
        "subject": _header(message, "subject"),
        "date": _header(message, "date"),
        "attachment": message.get_content_type() == "multipart/mixed",
    }


def _header(message: Message, name: str) -> str:
    value = message.get(name)
    return " ".join(str(value).split()) if value is not None else ""


def message_json(raw: bytes) -> dict[str, Any]:
    """Everything the message view shows except the HTML itself (that loads in a frame)."""
    message = parse(raw)
    text, html = body_parts(raw)
    if text is None and html is not None:
        text = readable_text(raw)
    if text is not None:
        text = text.replace("\r\n", "\n")
    return {
        "from": addresses(message.get_all("from") or []),
        "to": addresses(message.get_all("to") or []),
        "cc": addresses(message.get_all("cc") or []),
        "reply_to": addresses(message.get_all("reply-to") or []),
        "subject": _header(message, "subject"),
        "date": _header(message, "date"),
        "message_id": _header(message, "message-id"),
        "text": text,
        "has_html": html is not None,
        "remote_content": bool(html and _REMOTE.search(html)),
        "headers": header_fields(message),
        "attachments": [
            {
                "index": a.index,
                "filename": a.filename,
                "content_type": a.content_type,
                "size": a.size,
            }
            for a in attachments(raw)
        ],
        "links": links_in(raw),
        "size": len(raw),
        "auth": auth.as_json() if (auth := read_verdicts(raw)) is not None else None,
    }


def frame_html(raw: bytes) -> str:
    """The HTML part with its cid: images inlined, for the sandboxed frame."""
    _, html = body_parts(raw)
    if html is None:
        return ""
    images: dict[str, str] = {}
    for part in parse(raw).walk():
        cid = part.get("content-id")
        if cid and not part.is_multipart() and part.get_content_maintype() == "image":
            data = attachment_bytes(part)
            if len(data) <= INLINE_IMAGE_LIMIT:
                encoded = base64.b64encode(data).decode("ascii")
                images[str(cid).strip().strip("<>")] = (
                    f"data:{part.get_content_type()};base64,{encoded}"
                )
    if images:
        html = _CID.sub(lambda m: images.get(m.group(1), m.group(0)), html)
    return _META_REFRESH.sub("", html)


def html_policy(remote_images: bool) -> str:
    """The frame's CSP: no scripts, no loads, not even fonts; images only when asked.

    ``sandbox`` (CSP Level 2 §7.14) also holds if the frame URL is opened on its own.
    """
    images = "data: http: https:" if remote_images else "data:"
    return (
        f"default-src 'none'; img-src {images}; style-src 'unsafe-inline';"
        " form-action 'none'; base-uri 'none'; frame-ancestors 'self'; sandbox"
    )
