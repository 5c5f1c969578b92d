"""Pilot tests of every screen and action, on a store with fixed data (attached mode)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from textual.widgets import DataTable, OptionList, Static, TabbedContent

from sandbox.chaos import DomainChaos
from sandbox.config import Config
from sandbox.store import SqliteStore
from sandbox.tui.app import SandboxApp, make_app
from sandbox.tui.dialogs import ChaosPicker, ConfirmScreen, HelpScreen, PathPrompt
from sandbox.tui.screens import ChaosScreen, DnsLogScreen, QueueScreen, SmtpLogScreen
from sandbox.tui.widgets import MailboxTree, StatusLine
from tests.tui.conftest import SIZE
from tests.tui.helpers import listed, open_message, ready, select, until

Filled = tuple[Config, SqliteStore, dict[str, Any]]


def app_for(store: Filled, **kwargs: Any) -> SandboxApp:
    config, opened, _ = store
    return make_app(config, store=opened, **kwargs)


def static_text(screen: Any, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


async def test_main_screen_lists_newest_first_with_states(store: Filled) -> None:
    app = app_for(store)
    _, _, ids = store
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        rows = listed(app)
        assert rows == sorted(rows, reverse=True)
        by_id = app.main.messages.rows_by_id
        assert by_id[ids["relayed"]].state == "delivered"
        assert by_id[ids["bounced"]].state == "bounced"
        assert by_id[ids["dsn"]].state == "bounce"
        assert by_id[ids["deferred"]].state == "deferred"
        assert by_id[ids["held"]].state == "held"
        status = str(app.main.query_one(StatusLine).query_one("#status-text", Static).render())
        assert "All mail: 7 messages" in status
        assert "relay queue: 1 waiting" in status
        header = str(app.main.query_one("#endpoints", Static).render())
        assert "127.0.0.1:1025" in header and "any AUTH accepted" in header
        assert ":1993" in header and "DNS :1053" in header


async def test_tree_filters_by_mailbox_folder_and_held(store: Filled) -> None:
    app = app_for(store)
    _, _, ids = store
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        tree = app.main.query_one(MailboxTree)
        tree.select_path("beta.test", "larry@beta.test", "INBOX")
        await until(pilot, lambda: set(listed(app)) == {ids["relayed"], ids["invoice"]})
        label = str(tree.cursor_node.label) if tree.cursor_node else ""
        assert label.startswith("INBOX 2")  # two unread
        tree.select_path("alpha.test")
        await until(pilot, lambda: ids["dsn"] in listed(app) and ids["relayed"] not in listed(app))
        held = tree.root.children[-1]
        assert str(held.label).startswith("Held (outside)")
        tree.move_cursor(held)
        tree.focus()
        await pilot.press("enter")
        await until(pilot, lambda: listed(app) == [ids["held"]])
        assert app.place_label == "Held"


async def test_search_by_field_and_body(store: Filled) -> None:
    app = app_for(store)
    _, _, ids = store
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        await pilot.press("slash")
        await pilot.press(*"from:ann", "enter")
        await until(pilot, lambda: set(listed(app)) == {ids["bounced"], ids["deferred"]})
        await pilot.press("slash")
        app.main.query_one("#search").value = ""  # type: ignore[attr-defined]
        await pilot.press(*"subject:lunch", "enter")
        await until(pilot, lambda: listed(app) == [ids["deferred"]])
        await pilot.press("slash")
        app.main.query_one("#search").value = ""  # type: ignore[attr-defined]
        await pilot.press(*"usual place", "enter")  # only in the body
        await until(pilot, lambda: listed(app) == [ids["deferred"]])
        await pilot.press("slash", "escape")
        await until(pilot, lambda: len(listed(app)) == 7)


async def test_message_view_tabs(store: Filled, tmp_path: Path, monkeypatch: Any) -> None:
    opened: list[str] = []
    app = app_for(store, url_opener=opened.append)
    _, _, ids = store
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        screen = await open_message(app, pilot, ids["invoice"])
        assert "pay at https://example.com/pay?id=7" in static_text(screen, "#text-body")
        tabs = screen.query_one(TabbedContent)
        for key, tab in zip(
            "1234567", ("text", "html", "headers", "parts", "raw", "journey", "links"), strict=True
        ):
            await pilot.press(key)
            assert tabs.active == tab
        headers = screen.query_one("#headers-table", DataTable)
        assert any(str(headers.get_row_at(i)[1]) == "Invoice 7" for i in range(headers.row_count))
        parts = screen.query_one("#parts-table", DataTable)
        types = [str(parts.get_row_at(i)[1]).strip() for i in range(parts.row_count)]
        assert types == [
            "multipart/mixed",
            "multipart/alternative",
            "text/plain",
            "text/html",
            "application/pdf",
        ]
        assert str(parts.get_row_at(4)[3]) == "invoice.pdf"
        assert "Content-Type: multipart/mixed" in static_text(screen, "#raw-body")
        # save the attachment
        monkeypatch.chdir(tmp_path)
        await pilot.press("4")
        parts.focus()
        parts.move_cursor(row=4)
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, PathPrompt))
        await pilot.press("enter")
        saved = tmp_path / "invoice.pdf"
        await until(pilot, saved.exists)
        assert saved.read_bytes() == b"%PDF-1.4 fake invoice"
        # open a link
        await pilot.press("7")
        links = screen.query_one("#links-list", OptionList)
        assert links.option_count == 2
        links.focus()
        links.highlighted = 1
        await pilot.press("enter")
        await until(pilot, lambda: opened == ["https://example.com/help"])
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is app.main)


async def test_journeys_of_relayed_and_bounced(store: Filled) -> None:
    app = app_for(store)
    _, _, ids = store
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        screen = await open_message(app, pilot, ids["relayed"])
        journey = static_text(screen, "#journey-body")
        for text in (
            "submitted",
            "beta.test MX → 10 mx.beta.test",
            "connected",
            "received",
            "mailbox larry@beta.test / INBOX",
            "250 2.0.0 OK",
        ):
            assert text in journey
        assert journey.index("submitted") < journey.index("connected") < journey.index("250 2.0.0")
        await pilot.press("escape")
        screen = await open_message(app, pilot, ids["bounced"])
        journey = static_text(screen, "#journey-body")
        assert "550 5.1.1" in journey and "DSN to ann@alpha.test" in journey
        await pilot.press("escape")
        screen = await open_message(app, pilot, ids["deferred"])
        assert "retry in 5s" in static_text(screen, "#journey-body")


async def test_mark_read_unread_delete_and_open_marks_read(store: Filled) -> None:
    app = app_for(store)
    _, opened, ids = store

    async def flags(entry_id: int) -> tuple[str, ...]:
        record = await opened.get_message(entry_id)
        assert record is not None
        return record.flags

    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        await select(app, pilot, ids["held"])
        await pilot.press("m")
        await until(pilot, lambda: app.main.messages.rows_by_id[ids["held"]].seen)
        assert "\\Seen" in await flags(ids["held"])
        await pilot.press("m")
        await until(pilot, lambda: not app.main.messages.rows_by_id[ids["held"]].seen)
        await open_message(app, pilot, ids["dsn"])
        await pilot.press("escape")
        await until(pilot, lambda: app.main.messages.rows_by_id[ids["dsn"]].seen)
        await select(app, pilot, ids["held"])
        await pilot.press("d")
        await until(pilot, lambda: ids["held"] not in listed(app))
        assert await opened.get_message(ids["held"]) is None
        # the message went with its last copy; the deferred one keeps its delivery
        assert await opened.fetchall(
            "SELECT count(*) FROM messages WHERE envelope_to LIKE '%ceo@%'"
        ) == [(0,)]
        await select(app, pilot, ids["deferred"])
        await pilot.press("d")
        await until(pilot, lambda: ids["deferred"] not in listed(app))
        assert len(await opened.pending_deliveries()) == 1


async def test_clear_a_mailbox_and_everything_with_confirmation(store: Filled) -> None:
    app = app_for(store)
    _, opened, _ = store
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        app.main.query_one(MailboxTree).select_path("beta.test", "larry@beta.test")
        await until(pilot, lambda: len(listed(app)) == 2)
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")
        await pilot.pause()
        assert await opened.count_messages() == 7
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: listed(app) == [])
        assert await opened.count_messages() == 5
        await pilot.press("X")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: app._total == 0)
        assert await opened.count_messages() == 0


async def test_queue_screen_retry_now(store: Filled) -> None:
    app = app_for(store)
    _, opened, _ = store
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        await pilot.press("Q")
        await until(pilot, lambda: isinstance(app.screen, QueueScreen))
        table = app.screen.query_one("#queue-table", DataTable)
        await until(pilot, lambda: table.row_count == 1)
        row = [str(c) for c in table.get_row_at(0)]
        assert row[2] == "gamma.test" and row[4] == "deferred" and "Greylisted" in row[7]
        assert row[6] == "09:02:05"
        await pilot.press("r")
        await until(
            pilot, lambda: table.row_count == 1 and str(table.get_row_at(0)[6]) != "09:02:05"
        )
        (delivery,) = await opened.pending_deliveries()
        assert delivery.next_attempt_at > 1704186125.0
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is app.main)


async def test_dns_and_smtp_logs(store: Filled) -> None:
    app = app_for(store)
    _, opened, _ = store
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        await pilot.press("D")
        await until(pilot, lambda: isinstance(app.screen, DnsLogScreen))
        table = app.screen.query_one("#dns-table", DataTable)
        await until(pilot, lambda: table.row_count == 4)
        assert str(table.get_row_at(3)[5]) == "NXDOMAIN"
        opened.journal(
            "dns.query",
            {
                "client": "x",
                "transport": "udp",
                "qname": "new.beta.test.",
                "qtype": "A",
                "rcode": "NOERROR",
                "answer": "127.0.0.12",
                "micros": 1,
                "fault": None,
            },
        )
        await until(pilot, lambda: table.row_count == 5)  # polled while attached
        await pilot.press("S")
        await until(pilot, lambda: isinstance(app.screen, SmtpLogScreen))
        screen = app.screen
        await until(
            pilot, lambda: "MAIL FROM:<mikaela@alpha.test>" in static_text(screen, "#transcript")
        )


async def test_chaos_screen_switches_faults(store: Filled) -> None:
    app = app_for(store)
    _, opened, _ = store
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        await pilot.press("C")
        await until(pilot, lambda: isinstance(app.screen, ChaosScreen))
        table = app.screen.query_one("#chaos-table", DataTable)
        await until(pilot, lambda: table.row_count == 3)
        assert "greylist" in str(table.get_row_at(1)[1])
        table.move_cursor(row=1)
        await pilot.press("o")
        await until(pilot, lambda: str(table.get_row_at(1)[1]) == "off")
        assert "beta.test" not in await opened.chaos()
        table.move_cursor(row=2)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ChaosPicker))
        await pilot.press("down", "down", "down", "enter")  # reject 550 at RCPT
        await until(pilot, lambda: "gamma.test" in _sync_chaos(app))
        settings = await opened.chaos()
        assert DomainChaos.from_json(settings["gamma.test"]).mx.mode == "reject"  # type: ignore[union-attr]


def _sync_chaos(app: SandboxApp) -> str:
    table = app.screen.query_one("#chaos-table", DataTable)
    return " ".join(
        str(table.get_row_at(i)[0])
        for i in range(table.row_count)
        if "reject" in str(table.get_row_at(i)[1])
    )


async def test_help_and_command_palette(store: Filled) -> None:
    app = app_for(store)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is app.main)
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        await pilot.press(*"Relay queue")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, QueueScreen))


async def test_mouse_click_opens_a_message(store: Filled) -> None:
    app = app_for(store)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        await pilot.click("#messages", offset=(20, 1))
        await pilot.click("#messages", offset=(20, 1))
        await until(pilot, lambda: app.screen is not app.main)


async def test_floods_are_merged(store: Filled) -> None:
    app = app_for(store)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        calls = 0
        original = app.main.messages.sync

        async def counting() -> None:
            nonlocal calls
            calls += 1
            await original()

        app.main.messages.sync = counting  # type: ignore[method-assign]
        started = time.monotonic()
        for _ in range(200):
            app.changed({"message.stored"})
            await pilot.pause(0.005)
        elapsed = time.monotonic() - started
        await pilot.pause(0.3)
        assert 1 <= calls <= elapsed * 4 + 2  # at most 4 refreshes a second
