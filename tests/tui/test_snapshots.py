"""SVG snapshots (pytest-textual-snapshot): fixed data, fixed times (UTC), fixed ports.

Update after an intended change with: pytest tests/tui/test_snapshots.py --snapshot-update
"""

from __future__ import annotations

from typing import Any

import pytest
from textual.pilot import Pilot

from sandbox.config import Config
from sandbox.tui.app import make_app
from sandbox.tui.screens import SandboxScreen
from tests.tui.conftest import SIZE
from tests.tui.helpers import open_message, ready, until

Filled = tuple[Config, dict[str, Any]]


SIZES = [(80, 24), (120, 40), (200, 60)]  # the default terminal, a laptop, a wide screen


@pytest.mark.parametrize("size", [SIZE, *SIZES], ids=lambda s: f"{s[0]}x{s[1]}")
def test_main_screen(snap_compare: Any, filled: Filled, size: tuple[int, int]) -> None:
    config, _ = filled

    async def run_before(pilot: Pilot[None]) -> None:
        await ready(pilot.app, pilot)  # type: ignore[arg-type]

    assert snap_compare(make_app(config), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("key", ["1", "2", "6"])
def test_message_view_sizes(
    snap_compare: Any, filled: Filled, size: tuple[int, int], key: str
) -> None:
    config, ids = filled
    app = make_app(config)

    async def run_before(pilot: Pilot[None]) -> None:
        await ready(app, pilot)
        await open_message(app, pilot, ids["invoice"])
        await pilot.press(key)
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_queue_sizes(snap_compare: Any, filled: Filled, size: tuple[int, int]) -> None:
    config, _ = filled
    app = make_app(config)

    async def run_before(pilot: Pilot[None]) -> None:
        await ready(app, pilot)
        await pilot.press("Q")
        await until(pilot, lambda: isinstance(app.screen, SandboxScreen))
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize(
    ("name", "key", "tab"),
    [
        ("invoice", "1", "text"),
        ("invoice", "2", "html"),
        ("invoice", "3", "headers"),
        ("invoice", "4", "parts"),
        ("invoice", "5", "raw"),
        ("invoice", "7", "links"),
        ("relayed", "6", "journey-relayed"),
        ("bounced", "6", "journey-bounced"),
    ],
)
def test_message_view(snap_compare: Any, filled: Filled, name: str, key: str, tab: str) -> None:
    config, ids = filled
    app = make_app(config)

    async def run_before(pilot: Pilot[None]) -> None:
        await ready(app, pilot)
        await open_message(app, pilot, ids[name])
        await pilot.press(key)
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


@pytest.mark.parametrize("key", ["Q", "D", "C"])
def test_screens(snap_compare: Any, filled: Filled, key: str) -> None:
    config, _ = filled
    app = make_app(config)

    async def run_before(pilot: Pilot[None]) -> None:
        await ready(app, pilot)
        await pilot.press(key)
        await until(pilot, lambda: isinstance(app.screen, SandboxScreen))
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
