"""``POST /api/v1/send`` and ``…/release``: mail goes in through the sandbox's own
submission server over SMTP, like any app's, so it travels the whole journey (Sent copy,
DNS, relay, MX, mailbox); a recipient at a real domain is held, never sent anywhere."""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
import secrets
from collections.abc import Sequence
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formataddr, formatdate, make_msgid
from typing import TYPE_CHECKING, Any

import aiosmtplib

from sandbox.http.errors import ApiError, bad_request
from sandbox.store import http_views as views
from sandbox.store.models import normalize_address

if TYPE_CHECKING:
    from sandbox.runtime import Runtime

_QUEUED = re.compile(r"queued as (\S+)")
# The relayed copy of a message to fake domains only arrives after the relay's hop.
FIRST_COPY_WAIT = 5.0
SMTP_TIMEOUT = 30.0


def _address(value: Any, where: str) -> tuple[str, str]:
    """Mailpit's ``{"Email": …, "Name": …}``, checked."""
    if not isinstance(value, dict) or not isinstance(value.get("Email"), str):
        raise bad_request(f'{where} must be {{"Email": "ann@alpha.test", "Name": "Ann"}}')
    email, name = value["Email"].strip(), value.get("Name") or ""
    if not isinstance(name, str):
        raise bad_request(f"{where}: Name must be text")
    if "@" not in email or any(c in email for c in "\r\n<> ,"):
        raise bad_request(f"{where}: {email!r} is not an email address")
    return name, email


def _addresses(body: dict[str, Any], key: str) -> list[tuple[str, str]]:
    value = body.get(key) or []
    if not isinstance(value, list):
        raise bad_request(f'"{key}" must be a list of {{"Email": …, "Name": …}}')
    return [_address(item, f"{key}[{i}]") for i, item in enumerate(value)]


def _text(body: dict[str, Any], key: str) -> str:
    value = body.get(key) or ""
    if not isinstance(value, str):
        raise bad_request(f'"{key}" must be text')
    return value


def build_message(body: dict[str, Any]) -> tuple[EmailMessage, str, list[str]]:
    """The message a send request describes, its envelope sender and recipients."""
    sender = _address(body.get("From"), "From")
    to, cc, bcc = (_addresses(body, k) for k in ("To", "Cc", "Bcc"))
    reply_to = _addresses(body, "ReplyTo")
    if not (to or cc or bcc):
        raise bad_request('say who gets it: "To": [{"Email": "larry@beta.test"}]')
    message = EmailMessage(policy=SMTP)
    message["From"] = formataddr(sender)
    for key, pairs in (("To", to), ("Cc", cc), ("Reply-To", reply_to)):
        if pairs:
            message[key] = ", ".join(formataddr(p) for p in pairs)
    message["Subject"] = _text(body, "Subject")
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain=sender[1].rpartition("@")[2])
    headers = body.get("Headers") or {}
    if not isinstance(headers, dict):
        raise bad_request('"Headers" must be an object of header names and values')
    for name, value in headers.items():
        if not isinstance(value, str) or any(c in name + value for c in "\r\n") or ":" in name:
            raise bad_request(f"header {name!r} must be one line of text")
        message[name] = value
    tags = body.get("Tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise bad_request('"Tags" must be a list of names')
    if tags:
        message["X-Tags"] = ", ".join(tags)
    text, html = _text(body, "Text"), _text(body, "HTML")
    message.set_content(text or ("" if html else "\n"))
    if html:
        message.add_alternative(html, subtype="html")
    for index, item in enumerate(body.get("Attachments") or []):
        _attach(message, item, index)
    recipients = [addr for _, addr in (*to, *cc, *bcc)]
    return message, sender[1], recipients


def _attach(message: EmailMessage, item: Any, index: int) -> None:
    where = f"Attachments[{index}]"
    if not isinstance(item, dict) or not isinstance(item.get("Content"), str):
        raise bad_request(f'{where} needs "Content" (base64) and "Filename"')
    try:
        data = base64.b64decode(item["Content"], validate=True)
    except (binascii.Error, ValueError):
        raise bad_request(f"{where}: Content is not base64") from None
    filename = item.get("Filename") or f"attachment-{index + 1}"
    ctype = item.get("ContentType") or "application/octet-stream"
    if not isinstance(filename, str) or not isinstance(ctype, str) or "/" not in ctype:
        raise bad_request(f"{where}: Filename must be text, ContentType like image/png")
    maintype, _, subtype = ctype.partition("/")
    content_id = item.get("ContentID")
    if content_id:
        message.add_attachment(
            data,
            maintype=maintype,
            subtype=subtype,
            filename=filename,
            disposition="inline",
            cid=f"<{str(content_id).strip('<>')}>",
        )
    else:
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)


def smtp_login(runtime: Runtime, sender: str, authorization: str | None) -> tuple[str, str] | None:
    """The SMTP AUTH a submission from ``sender`` needs: none unless ``sender`` is an
    ``[accounts]`` address, which the submission server lets only its own login use;
    then the request's HTTP basic credentials must be that account's."""
    address = normalize_address(sender)
    accounts = {normalize_address(a.address): a.password for a in runtime.config.accounts}
    if address not in accounts:
        return None
    user = password = ""
    if authorization and authorization.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        user, _, password = decoded.partition(":")
    if normalize_address(user) != address or not secrets.compare_digest(
        password.encode(), accounts[address].encode()
    ):
        raise ApiError(
            403,
            f"{address} is a configured account: the submission server takes mail from it"
            " only after SMTP AUTH as it, so send this request with that account's HTTP"
            f" basic credentials (curl -u {address}:PASSWORD ...)",
        )
    return address, password


async def _submit(
    runtime: Runtime,
    sender: str,
    recipients: Sequence[str],
    data: bytes | EmailMessage,
    login: tuple[str, str] | None = None,
) -> str:
    """SMTP to the submission server (with AUTH given ``login``); the queue id of its
    250, or an ApiError."""
    endpoints = runtime.endpoints
    if endpoints is None:
        raise ApiError(503, "the submission server is not running yet; try again in a moment")
    host, port = endpoints.smtp
    try:
        async with aiosmtplib.SMTP(
            hostname=host, port=port, timeout=SMTP_TIMEOUT, start_tls=False
        ) as smtp:
            if login is not None:
                await smtp.login(*login)
            if isinstance(data, EmailMessage):
                errors, reply = await smtp.send_message(
                    data, sender=sender, recipients=list(recipients)
                )
            else:
                errors, reply = await smtp.sendmail(sender, list(recipients), data)
    except aiosmtplib.SMTPRecipientsRefused as exc:
        refused = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
        raise bad_request(f"the submission server refused every recipient: {refused}") from None
    except aiosmtplib.SMTPResponseException as exc:
        status = 413 if exc.code == 552 else 400
        raise ApiError(
            status, f"the submission server refused it: {exc.code} {exc.message}"
        ) from None
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise ApiError(
            503, f"could not reach the submission server at {host}:{port}: {exc}"
        ) from None
    if errors:
        refused = "; ".join(f"{r}: {code} {text}" for r, (code, text) in errors.items())
        raise bad_request(f"the submission server refused some recipients: {refused}")
    match = _QUEUED.search(reply)
    return match.group(1) if match else ""


async def send_message(
    runtime: Runtime, body: dict[str, Any], authorization: str | None = None
) -> int:
    """Submit a Mailpit send request; the ID of its first stored copy."""
    message, sender, recipients = build_message(body)
    login = smtp_login(runtime, sender, authorization)
    queue_id = await _submit(runtime, sender, recipients, message, login)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + FIRST_COPY_WAIT
    while True:
        ids = await views.entries_of_queue_id(runtime.store, queue_id) if queue_id else []
        if ids:
            return ids[0]
        if loop.time() >= deadline:
            raise ApiError(
                504,
                f"the message was accepted (queued as {queue_id}) but no copy was stored"
                f" within {FIRST_COPY_WAIT:g}s; GET /api/v1/queue shows where it waits",
            )
        await asyncio.sleep(0.02)


async def release_message(
    runtime: Runtime,
    sender: str,
    recipients: Sequence[str],
    raw: bytes,
    authorization: str | None = None,
) -> None:
    for index, address in enumerate(recipients):
        if "@" not in address or any(c in address for c in "\r\n<> ,"):
            raise bad_request(f"To[{index}]: {address!r} is not an email address")
    login = smtp_login(runtime, sender, authorization)
    await _submit(runtime, sender, recipients, raw, login)
