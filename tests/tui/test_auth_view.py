"""The message view shows the receiving MX's verdicts under the journey."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Static

from sandbox.store import Copy, Hop, NewMessage, SqliteStore
from sandbox.tui.app import make_app
from tests.tui.conftest import SIZE, fixed_config
from tests.tui.helpers import open_message, ready

CHECKED = (
    b"Received: from mx.alpha.test by mx.beta.test\r\n"
    b"Authentication-Results: mx.beta.test;\r\n"
    b"\tspf=pass smtp.mailfrom=alpha.test;\r\n"
    b'\tdkim=fail reason="body hash mismatch" header.d=alpha.test header.s=sandbox;\r\n'
    b"\tarc=none; dmarc=pass header.from=alpha.test policy.dmarc=none\r\n"
    b"From: app@alpha.test\r\nTo: larry@beta.test\r\nSubject: checked\r\n\r\nbody\r\n"
)


async def test_message_view_lists_the_verdicts(tmp_path: Path) -> None:
    data = tmp_path / "sandbox.sqlite3"
    store = await SqliteStore.open(str(data))
    try:
        stored = await store.ingest(
            NewMessage(
                raw=CHECKED,
                envelope_from="app@alpha.test",
                envelope_to=("larry@beta.test",),
                source="mx.beta.test",
                copies=(Copy("larry@beta.test"),),
                hops=(Hop("authenticated", "spf=pass dkim=fail dmarc=pass", {}),),
            )
        )
        app = make_app(fixed_config(data), store=store)
        async with app.run_test(size=SIZE) as pilot:
            await ready(app, pilot)
            screen = await open_message(app, pilot, stored.copies[0].entry_id)
            text = str(screen.query_one("#journey-body", Static).render())
        assert "Authentication (by mx.beta.test):" in text
        assert "dkim  fail" in text and "(body hash mismatch)" in text
        assert "dmarc pass" in text
    finally:
        await store.close()
