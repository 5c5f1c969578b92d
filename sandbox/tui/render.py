"""Pure functions from stored data to what the screens show: no widgets, no store.

Times are formatted from the data (local time), never from the clock, so the same data
always renders the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import Message
from typing import Any

from rich.text import Text

from sandbox.links import links_in
from sandbox.mime import body_parts, decoded_text, parse, readable_text
from sandbox.store import Hop, Outcome, Step


def clock(timestamp: float, *, millis: bool = False) -> str:
    moment = datetime.fromtimestamp(timestamp)
    return moment.strftime("%H:%M:%S.%f")[:-3] if millis else moment.strftime("%H:%M:%S")


def clock_minutes(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).strftime("%H:%M")


def stamp(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).strftime("%m-%d %H:%M")


def human_size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size / 1024 / 1024:.1f} MiB"


def clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


# --- the journey -----------------------------------------------------------------------

GOOD = {
    Outcome.ACCEPTED,
    Outcome.DELIVERED,
    Outcome.CONNECTED,
    Outcome.REUSED,
    Outcome.MX,
    Outcome.ADDRESS,
    Outcome.IMPLICIT_MX,
    Outcome.SENT_COPY,
    Outcome.QUEUED,
    Outcome.GENERATED,
    Outcome.SENT,
}
WARN = {Outcome.DEFERRED, "cached", Outcome.HELD, Outcome.NO_ADDRESS}
BAD = {
    Outcome.BOUNCED,
    Outcome.FAILED,
    Outcome.REFUSED,
    Outcome.RCPT_REFUSED,
    Outcome.NULL_MX,
    Outcome.NXDOMAIN,
    Outcome.LOOP,
    Outcome.NOT_SENT,
}


def outcome_style(outcome: str) -> str:
    if outcome in BAD:
        return "bold red"
    if outcome in WARN:
        return "bold yellow"
    if outcome in GOOD:
        return "bold green"
    return "bold"


def stage_of(hop: Hop) -> str:
    """Where on the path a hop happened: the title of its section."""
    d = hop.detail
    step = hop.step
    if step == Step.SUBMITTED:
        return f"app {d.get('client', '')} → submission server {d.get('server', '')}".strip()
    if step == Step.RECEIVED:
        return f"MX server {d.get('server', '')} receives it"
    if step == Step.QUEUED:
        return "relay queue"
    if step == Step.DNS:
        return f"DNS: where does {d.get('domain', '')} take mail?"
    if step in (Step.CONNECT, Step.SMTP):
        return f"MX host {d.get('host', '')} ({d.get('address', '')}:{d.get('port', '')})"
    if step == Step.STORED:
        return f"mailbox {d.get('mailbox', '')} / {d.get('folder', '')}"
    if step == Step.RELAY:
        return f"relay to {d.get('domain', '')}: attempt {d.get('attempt', '')}"
    if step == Step.BOUNCE:
        return "bounce to the sender"
    return step


def describe(hop: Hop) -> str:
    """The one detail line a person wants for a hop: the reply, the answer, the reason."""
    d = hop.detail
    step = hop.step
    parts: list[str] = []
    if step in (Step.SUBMITTED, Step.RECEIVED):
        parts.append(f"MAIL FROM:<{d.get('mail_from', '').strip('<>')}>")
        rcpts = d.get("rcpt_to") or []
        parts.append("RCPT TO:" + ",".join(f"<{r}>" for r in rcpts))
        if d.get("auth_user"):
            parts.append(f"AUTH {d['auth_user']}")
        if d.get("tls"):
            parts.append("TLS")
        if d.get("helo"):
            parts.append(f"HELO {d['helo']}")
    elif step == Step.QUEUED:
        parts.append(f"{d.get('domain', '')}: {', '.join(d.get('recipients') or [])}")
    elif step == Step.DNS:
        parts.append(f"{d.get('query', '')} → {d.get('answer') or d.get('error') or hop.outcome}")
        if d.get("cached"):
            parts.append("(cached)")
    elif step == Step.CONNECT:
        parts.append(str(d.get("reply") or d.get("error") or ""))
    elif step in (Step.SMTP, Step.RELAY):
        parts.append(str(d.get("reply") or ""))
        if d.get("retry_in_seconds") is not None:
            parts.append(f"retry in {d['retry_in_seconds']:g}s")
    elif step == Step.STORED:
        if d.get("reason"):
            parts.append(str(d["reason"]))
    elif step == Step.BOUNCE:
        if d.get("about") is not None:
            parts.append(f"about #{d['about']}")  # the copy id (see store/lookup.py)
        if d.get("to"):
            parts.append(f"DSN to {d['to']}")
        if d.get("failed"):
            parts.append("failed: " + ", ".join(d["failed"]))
        if d.get("reason"):
            parts.append(str(d["reason"]))
    return " ".join(p for p in parts if p)


def journey_text(hops: Sequence[Hop]) -> Text:
    """The hops drawn as a path: a section per place, a line per hop, time and outcome."""
    text = Text()
    if not hops:
        text.append("No journey recorded for this message.", style="dim")
        return text
    previous: str | None = None
    for index, hop in enumerate(hops):
        stage = stage_of(hop)
        if stage != previous:
            if previous is not None:
                text.append("  │\n", style="dim")
            text.append("  ◆ ", style="bold cyan")
            text.append(stage + "\n", style="bold")
            previous = stage
        last = index == len(hops) - 1 or stage_of(hops[index + 1]) != stage
        text.append("  └─ " if last else "  ├─ ", style="dim")
        text.append(clock(hop.at, millis=True) + "  ")
        text.append(f"{hop.step:<9} ", style="cyan")
        text.append(f"{hop.outcome:<12}", style=outcome_style(hop.outcome))
        text.append(" " + describe(hop) + "\n")
    final = hops[-1]
    text.append("  ▼\n", style="dim")
    text.append("  ● ", style=outcome_style(final.outcome))
    text.append(f"{final.step} {final.outcome}", style=outcome_style(final.outcome))
    return text


# --- MIME ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Part:
    """One node of the MIME tree."""

    path: str  # "1.2": which part, as IMAP numbers them (RFC 3501 §6.4.5)
    depth: int
    content_type: str
    size: int
    filename: str | None
    disposition: str | None
    message: Message


def mime_parts(raw: bytes) -> list[Part]:
    parts: list[Part] = []

    def walk(message: Message, path: str, depth: int) -> None:
        payload = None if message.is_multipart() else message.get_payload(decode=True)
        size = len(payload) if isinstance(payload, bytes) else 0
        parts.append(
            Part(
                path or "(message)",
                depth,
                message.get_content_type(),
                size,
                message.get_filename(),
                message.get_content_disposition(),
                message,
            )
        )
        if message.is_multipart():
            children = message.get_payload()
            if isinstance(children, list):
                for number, child in enumerate(children, 1):
                    walk(child, f"{path}.{number}" if path else str(number), depth + 1)

    walk(parse(raw), "", 0)
    return parts


def part_bytes(part: Part) -> bytes:
    payload = part.message.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def links(raw: bytes) -> list[str]:
    """Every web URL in the text and HTML parts, decoded (the CLI's and test API's too)."""
    return links_in(raw)


def headers(raw: bytes) -> list[tuple[str, str]]:
    message = parse(raw)
    result: list[tuple[str, str]] = []
    for name, value in message.raw_items():
        try:
            text = str(message.policy.header_fetch_parse(name, value))
        except Exception:  # a broken header still shows, as it came
            text = str(value)
        result.append((name, " ".join(text.split())))
    return result


def readable(raw: bytes) -> str:
    """The Text tab: the plain part, or the HTML part rendered as text."""
    return readable_text(raw) or "(no text part)"


def rendered_html(html: str) -> str:
    """HTML as readable text with its layout: headings, lists, tables, links in brackets."""
    from inscriptis import get_text
    from inscriptis.css_profiles import CSS_PROFILES
    from inscriptis.model.config import ParserConfig

    return str(get_text(html, ParserConfig(css=CSS_PROFILES["strict"], display_links=True)))


def html_source(raw: bytes) -> str | None:
    return body_parts(raw)[1]


def text_of(part: Part) -> str:
    return decoded_text(part.message)


def cells(values: Iterable[Any]) -> list[str]:
    return [str(v) for v in values]
