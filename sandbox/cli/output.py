"""How messages look on a terminal and in JSON lines."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sandbox.auth.verdicts import read_verdicts
from sandbox.store import Hop, MessageRecord

_COLUMNS = ("ID", "RECEIVED", "MAILBOX", "FOLDER", "FROM", "SUBJECT", "SIZE", "")


def json_line(record: MessageRecord, journey: tuple[Hop, ...], raw: bytes | None = None) -> str:
    """The message JSON; with ``raw``, ``auth`` holds the receiving MX's verdicts (or null)."""
    data = record.as_json(journey)
    if raw is not None:
        verdicts = read_verdicts(raw)
        data["auth"] = verdicts.as_json() if verdicts else None
    return json.dumps(data, ensure_ascii=False)


def table(records: list[MessageRecord]) -> str:
    rows = [_COLUMNS] + [
        (
            str(r.id),
            _local_time(r.received_at),
            r.mailbox,
            r.folder,
            r.from_addr or r.envelope_from or "<>",
            _clip(r.subject or "(no subject)", 40),
            human_size(r.size),
            "held" if r.held else "",
        )
        for r in records
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
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
