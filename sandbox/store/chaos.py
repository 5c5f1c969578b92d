"""Fault injection settings shared with other processes (``mail-sandbox chaos``)."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiosqlite


async def chaos(conn: aiosqlite.Connection) -> dict[str, dict[str, Any]]:
    rows = await conn.execute_fetchall("SELECT domain, settings FROM chaos")
    return {r[0]: json.loads(r[1]) for r in rows}


def set_chaos(
    domain: str, settings: dict[str, Any] | None
) -> Callable[[aiosqlite.Connection], Awaitable[None]]:
    async def job(conn: aiosqlite.Connection) -> None:
        if settings is None:
            await conn.execute("DELETE FROM chaos WHERE domain = ?", (domain,))
        else:
            await conn.execute(
                "INSERT INTO chaos (domain, settings, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (domain) DO UPDATE SET settings = excluded.settings,"
                " updated_at = excluded.updated_at",
                (domain, json.dumps(settings), time.time()),
            )

    return job
