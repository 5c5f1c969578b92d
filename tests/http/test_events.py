"""``/api/events``: Mailpit's event types and shapes over a real WebSocket."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sandbox.config import RetentionConfig
from sandbox.testing import AsyncSandbox, sandbox_config
from tests.conftest import cli
from tests.http.conftest import message, submit


async def next_of(ws: aiohttp.ClientWebSocketResponse, kind: str) -> Any:
    """The Data of the next event of this Type (others are skipped)."""
    async with asyncio.timeout(10):
        while True:
            received = await ws.receive()
            assert received.type == aiohttp.WSMsgType.TEXT, received
            event = json.loads(received.data)
            assert set(event) == {"Type", "Data"}
            if event["Type"] == kind:
                return event["Data"]


async def test_new_update_delete_truncate_and_stats(
    box: AsyncSandbox, client: aiohttp.ClientSession
) -> None:
    async with client.ws_connect("/api/events") as ws:
        await submit(box, "ann@alpha.test", ["larry@beta.test"], message("Live"))
        first = await next_of(ws, "new")
        assert first["Subject"] == "Live"
        assert {"ID", "MessageID", "Read", "From", "To", "Created", "Tags", "Snippet"} <= set(first)
        delivered = await box.wait_for(to="larry@beta.test")
        stats = await next_of(ws, "stats")
        assert {"Total", "Unread", "Version"} == set(stats)
        assert stats["Total"] >= 1
        async with client.put("/api/v1/messages", json={"IDs": [str(delivered.id)], "Read": True}):
            pass
        assert await next_of(ws, "update") == {"ID": str(delivered.id), "Read": True}
        async with client.put("/api/v1/tags", json={"IDs": [str(delivered.id)], "Tags": ["x"]}):
            pass
        assert await next_of(ws, "update") == {"ID": str(delivered.id), "Tags": ["x"]}
        async with client.delete("/api/v1/messages", json={"IDs": [str(delivered.id)]}):
            pass
        assert await next_of(ws, "delete") == {"ID": str(delivered.id)}
        async with client.delete("/api/v1/messages"):
            pass
        assert await next_of(ws, "truncate") is None


async def test_events_from_another_part_of_the_sandbox(
    box: AsyncSandbox, client: aiohttp.ClientSession
) -> None:
    """A change the IMAP server makes (here: \\Seen by a FETCH) reaches the socket too."""
    import imaplib

    await submit(box, "ann@alpha.test", ["larry@beta.test"], message("Imap"))
    mail = await box.wait_for(to="larry@beta.test")
    async with client.ws_connect("/api/events") as ws:

        def read_it() -> None:
            imap = imaplib.IMAP4(*box.imap_address)
            imap.login("larry@beta.test", "x")
            imap.select("INBOX")
            imap.fetch("1", "(BODY[])")
            imap.logout()

        await asyncio.to_thread(read_it)
        assert await next_of(ws, "update") == {"ID": str(mail.id), "Read": True}


async def test_websocket_from_another_site_is_refused(
    box: AsyncSandbox, client: aiohttp.ClientSession
) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        async with client.ws_connect("/api/events", origin="http://evil.example"):
            pass
    assert refused.value.status == 403
    async with client.ws_connect("/api/events", origin=box.http_url) as ws:
        assert not ws.closed


async def test_retention_prune_is_announced() -> None:
    config = sandbox_config()
    config = replace(config, retention=RetentionConfig(max_messages=1, grace=0.0, interval=0.1))
    async with (
        AsyncSandbox(config=config) as box,
        aiohttp.ClientSession(box.http_url) as s,
        s.ws_connect("/api/events") as ws,
    ):
        await submit(box, "ann@alpha.test", ["larry@beta.test"], message("One"))
        await submit(box, "ann@alpha.test", ["larry@beta.test"], message("Two"))
        assert await next_of(ws, "prune") is None


async def test_changes_by_another_process_reach_the_socket(
    box: AsyncSandbox, client: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """The change feed brings another process's changes to this bus: `mail-sandbox
    import` and `clear` on the same data file show up as `new` and `truncate`."""
    eml = tmp_path / "in.eml"
    eml.write_bytes(message("From elsewhere"))
    async with client.ws_connect("/api/events") as ws:
        imported = await asyncio.to_thread(
            cli, "import", str(eml), "--mailbox", "larry@beta.test", "--data", box.data_path
        )
        assert imported.returncode == 0, imported.stderr
        arrived = await next_of(ws, "new")
        assert arrived["Subject"] == "From elsewhere"
        cleared = await asyncio.to_thread(cli, "clear", "--data", box.data_path)
        assert cleared.returncode == 0, cleared.stderr
        assert await next_of(ws, "truncate") is None


async def test_tag_change_by_another_process_reaches_the_socket(
    box: AsyncSandbox, client: aiohttp.ClientSession
) -> None:
    """Tags travel the change feed too: a second process tags a copy through the store,
    and this process's WebSocket reports the ``update`` with the new tags."""
    await submit(box, "ann@alpha.test", ["larry@beta.test"], message("Tag me"))
    delivered = await box.wait_for(to="larry@beta.test", subject="Tag me")
    script = (
        "import asyncio, sys\n"
        "from sandbox.store import SqliteStore, tags\n"
        "async def main():\n"
        "    store = await SqliteStore.open(sys.argv[1], follow=False)\n"
        "    try:\n"
        "        await tags.set_tags(store, [int(sys.argv[2])], ['elsewhere'])\n"
        "    finally:\n"
        "        await store.close()\n"
        "asyncio.run(main())\n"
    )
    async with client.ws_connect("/api/events") as ws:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, box.data_path, str(delivered.id)
        )
        assert await proc.wait() == 0
        assert await next_of(ws, "update") == {"ID": str(delivered.id), "Tags": ["elsewhere"]}
