"""How messages look on a terminal and in JSON lines."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sandbox.mime import message_parts, parse
from sandbox.store import Delivery, Hop, MessageRecord

_COLUMNS = ("ID", "RECEIVED", "MAILBOX", "FOLDER", "FROM", "SUBJECT", "SIZE", "")


def json_line(
    record: MessageRecord, journey: tuple[Hop, ...], raw: bytes | None = None, *, body: bool = True
) -> str:
    """One JSON Lines record; with ``raw``, ``auth`` (the receiving MX's verdicts, or null)
    and, unless ``body`` is false, the body: text, html, links, attachments."""
    data = record.as_json(journey)
    if raw is not None:
        from sandbox.auth.verdicts import read_verdicts  # authres: only when asked for

        verdicts = read_verdicts(raw)
        data["auth"] = verdicts.as_json() if verdicts else None
        if body:
            data.update(body_json(raw))
    return json.dumps(data, ensure_ascii=False)


def body_json(raw: bytes) -> dict[str, Any]:
    from sandbox.links import links_in

    text, html, attachments = message_parts(parse(raw))
    return {
        "text": text,
        "html": html,
        "links": links_in(raw),
        "attachments": [
            {"filename": a.filename, "content_type": a.content_type, "size": len(a.data)}
            for a in attachments
        ],
    }


def attachment_lines(raw: bytes) -> list[str]:
    _, _, attachments = message_parts(parse(raw))
    return [
        f"  {a.filename or '(no name)'}  {a.content_type}  {human_size(len(a.data))}"
        for a in attachments
    ]


def clip_for_terminal(text: str, width: int) -> str:
    """Columns are shortened for a person at a terminal, never for a pipe or a file."""
    return _clip(text, width) if sys.stdout.isatty() else text


def queue_table(pending: list[Delivery], copies: dict[int, int], now: float) -> str:
    """MESSAGE is the id ``show`` takes: the sender's copy, or ``mN`` once no copy is left."""
    rows = [("ID", "MESSAGE", "DOMAIN", "RECIPIENTS", "STATE", "TRIES", "NEXT TRY", "LAST REPLY")]
    for d in pending:
        wait = d.next_attempt_at - now
        rows.append(
            (
                str(d.id),
                str(copies[d.id]) if d.id in copies else f"m{d.message_id}",
                d.domain,
                ",".join(d.recipients),
                d.state,
                str(d.attempts),
                "now" if wait <= 0 else f"in {wait:.0f}s",
                clip_for_terminal(d.last_reply or "", 60),
            )
        )
    return _columns(rows)


def table(records: list[MessageRecord]) -> str:
    rows = [_COLUMNS] + [
        (
            str(r.id),
            _local_time(r.received_at),
            r.mailbox,
            r.folder,
            r.from_addr or r.envelope_from or "<>",
            clip_for_terminal(r.subject or "(no subject)", 40),
            human_size(r.size),
            "held" if r.held else "",
        )
        for r in records
    ]
    return _columns(rows)


def _columns(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def human_size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size / 1024 / 1024:.1f} MiB"


def journey_lines(journey: tuple[Hop, ...]) -> list[str]:
    lines = []
    for hop in journey:
        detail = ", ".join(f"{k}={_short(v)}" for k, v in hop.detail.items() if v not in (None, []))
        lines.append(
            f"  {_local_time(hop.at, millis=True)}  {hop.step:<10} {hop.outcome:<10} {detail}"
        )
    return lines


def _short(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(_short(v) for v in value)
    if isinstance(value, dict) and "result" in value:  # a verdict: its word (sandbox.auth)
        return str(value["result"])
    return str(value)


def _local_time(timestamp: float, *, millis: bool = False) -> str:
    moment = datetime.fromtimestamp(timestamp)
    return moment.strftime("%H:%M:%S.%f")[:-3] if millis else moment.strftime("%Y-%m-%d %H:%M:%S")


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
