"""TUI fixtures: fixed time zone, a store filled with fixed data, configs with fixed ports."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.config import Config, load_config
from sandbox.endpoints import write_endpoints
from sandbox.store import SqliteStore
from tests.tui.data import fill

SIZE = (150, 34)


@pytest.fixture(autouse=True)
def utc() -> Iterator[None]:
    """Times render in local time; the tests' local time is UTC."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if old is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = old
    time.tzset()


def fixed_config(data: Path) -> Config:
    """The default ports (shown in the header, never bound: nothing listens in these tests).

    The endpoints file says a sandbox runs on them, as a `serve` beside the TUI would."""
    config = load_config(env={}, flags={"data": str(data)})
    host = config.host
    ready: dict[str, Any] = {"event": "ready"}
    for name in ("smtp", "smtps", "pop3", "pop3s", "imap", "imaps", "dns"):
        ready[name] = [host, getattr(config, name).port]
    ready["mx"] = {d.name: [d.mx_address, config.mx.port] for d in config.domains}
    ready["data"] = "sandbox.sqlite3"  # the header shows the file's name; the same every run
    write_endpoints(str(data), ready)
    return config


@pytest.fixture
def filled(tmp_path: Path) -> tuple[Config, dict[str, Any]]:
    """A data file with every kind of message, built before the app's loop starts."""
    data = tmp_path / "sandbox.sqlite3"

    async def build() -> dict[str, Any]:
        store = await SqliteStore.open(str(data))
        try:
            return await fill(store)
        finally:
            await store.close()

    ids = asyncio.run(build())
    return fixed_config(data), ids


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[tuple[Config, SqliteStore, dict[str, Any]]]:
    data = tmp_path / "sandbox.sqlite3"
    opened = await SqliteStore.open(str(data))
    ids = await fill(opened)
    try:
        yield fixed_config(data), opened, ids
    finally:
        await opened.close()
