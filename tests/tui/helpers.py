"""Driving the TUI in tests: wait for things, read the list, pick a row."""

from __future__ import annotations

import time
from collections.abc import Callable

from textual.coordinate import Coordinate
from textual.pilot import Pilot

from sandbox.tui.app import SandboxApp, wait_ready
from sandbox.tui.message_view import MessageScreen


async def until(pilot: Pilot[None], condition: Callable[[], object], limit: float = 10.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the TUI did not get there in time")
        await pilot.pause(0.02)


async def ready(app: SandboxApp, pilot: Pilot[None]) -> None:
    await wait_ready(app)
    await pilot.pause()


def listed(app: SandboxApp) -> list[int]:
    """Entry ids in the list, top to bottom."""
    table = app.main.messages
    keys = [
        table.coordinate_to_cell_key(Coordinate(row, 0)).row_key.value
        for row in range(table.row_count)
    ]
    return [int(k) for k in keys if k is not None]


async def select(app: SandboxApp, pilot: Pilot[None], entry_id: int) -> None:
    table = app.main.messages
    table.focus()
    table.move_cursor(row=table.get_row_index(str(entry_id)))
    await pilot.pause()


async def open_message(app: SandboxApp, pilot: Pilot[None], entry_id: int) -> MessageScreen:
    await select(app, pilot, entry_id)
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(app.screen, MessageScreen))
    screen = app.screen
    assert isinstance(screen, MessageScreen)
    await until(pilot, lambda: screen.loaded is not None)
    await pilot.pause()
    return screen
