"""The TUI with real servers: in its own loop (up), and attached to a `serve` process."""

from __future__ import annotations

import asyncio
import smtplib
from pathlib import Path

from sandbox.events import EntriesExpunged, FlagsChanged
from sandbox.runtime import Runtime
from sandbox.tui.app import make_app
from sandbox.tui.screens import ChaosScreen
from tests.conftest import ServeProcess, cli, make_config
from tests.tui.conftest import SIZE
from tests.tui.helpers import listed, ready, select, until

MESSAGE = b"From: mikaela@alpha.test\r\nTo: larry@beta.test\r\nSubject: live one\r\n\r\nhi\r\n"


def send(port: int, to: list[str], raw: bytes = MESSAGE) -> None:
    with smtplib.SMTP("127.0.0.1", port) as client:
        client.sendmail("mikaela@alpha.test", to, raw)


async def test_up_shows_a_message_sent_over_smtp_and_acts_on_it(tmp_path: Path) -> None:
    runtime = Runtime(make_config(tmp_path))
    app = make_app(runtime.config, runtime=runtime)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        assert runtime.endpoints is not None
        header = str(app.main.query_one("#endpoints").render())
        assert f"127.0.0.1:{runtime.endpoints.smtp[1]}" in header
        port = runtime.endpoints.smtp[1]
        await asyncio.to_thread(send, port, ["larry@beta.test"])
        # the Sent copy at once, larry's INBOX copy once the relay delivered it
        await until(pilot, lambda: len(listed(app)) == 2)
        rows = app.main.messages.rows_by_id
        inbox = next(r for r in rows.values() if r.folder == "INBOX")
        events: list[object] = []
        runtime.bus.listen(events.append)
        # mark read: IMAP sessions hear of it through the bus
        await select(app, pilot, inbox.id)
        await pilot.press("m")
        await until(pilot, lambda: any(isinstance(e, FlagsChanged) for e in events))
        flags = next(e for e in events if isinstance(e, FlagsChanged))
        assert flags.mailbox == "larry@beta.test" and flags.changes[0][2] == ("\\Seen",)
        # resend: through the submission server again
        await pilot.press("R")
        await until(pilot, lambda: len(listed(app)) == 4, limit=10)
        # delete: IMAP hears of it too
        await select(app, pilot, inbox.id)
        await pilot.press("d")
        await until(pilot, lambda: any(isinstance(e, EntriesExpunged) for e in events))
        await until(pilot, lambda: inbox.id not in listed(app))
        # chaos in-process goes straight to the running MX servers
        await pilot.press("C")
        await until(pilot, lambda: isinstance(app.screen, ChaosScreen))
        await pilot.pause(0.2)
        table = app.screen.query_one("#chaos-table")
        table.move_cursor(row=1)  # type: ignore[attr-defined]
        await pilot.press("enter", "down", "enter")  # greylist
        await until(pilot, lambda: runtime.chaos.mx("beta.test") is not None)
    assert runtime.endpoints is None or runtime._store is None  # stopped with the app


async def test_attached_follows_a_serve_process(tmp_path: Path) -> None:
    data = tmp_path / "served.sqlite3"
    served = await asyncio.to_thread(ServeProcess, data)
    try:
        app = make_app(make_config(tmp_path, data=str(data)))
        async with app.run_test(size=SIZE) as pilot:
            await ready(app, pilot)
            # the ports the serve process got (free ones), read from its endpoints file
            header = str(app.main.query_one("#endpoints").render())
            assert f"127.0.0.1:{served.smtp_port}" in header
            assert f"IMAP :{served.ready['imap'][1]}" in header and ":?" not in header
            await asyncio.to_thread(send, served.smtp_port, ["larry@beta.test"])
            await until(pilot, lambda: len(listed(app)) == 2, limit=10)
            subjects = {r.subject for r in app.main.messages.rows_by_id.values()}
            assert subjects == {"live one"}
    finally:
        await asyncio.to_thread(served.stop)


def test_tui_command_refuses_what_it_cannot_attach_to(tmp_path: Path) -> None:
    missing = cli("tui", "--data", str(tmp_path / "nothing.sqlite3"))
    assert missing.returncode == 1
    assert "no sandbox data at" in missing.stderr and "serve" in missing.stderr
    memory = cli("tui", "--data", ":memory:")
    assert memory.returncode == 2
    assert len(memory.stderr.strip().splitlines()) == 1
