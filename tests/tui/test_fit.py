"""The TUI at every size, and the message view's details: names, Cc, rendered HTML, saving."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable, Footer, Static, TabbedContent

from sandbox.config import Config
from sandbox.endpoints import endpoints_path
from sandbox.store import Copy, Hop, NewMessage, SqliteStore
from sandbox.tui.app import SandboxApp, make_app
from sandbox.tui.dialogs import ConfirmScreen, PathPrompt
from sandbox.tui.render import describe
from sandbox.tui.screens import SmtpLogScreen
from sandbox.tui.widgets import EndpointsHeader, MailboxTree, MessageList, endpoint_lines
from tests.tui.helpers import listed, open_message, ready, until

Filled = tuple[Config, SqliteStore, dict[str, Any]]
SIZES = [(80, 24), (120, 40), (200, 60)]

NEWSLETTER = (
    b'From: "Billing Team" <billing@alpha.test>\r\n'
    b'To: "Larry Page" <larry@beta.test>\r\n'
    b'Cc: "Ann Other" <ann@gamma.test>\r\n'
    b"Subject: Newsletter\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
    b"--b1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    b"<h1>News</h1><ul><li>first</li><li>second</li></ul>"
    b"<table><tr><th>plan</th><th>price</th></tr><tr><td>pro</td><td>9</td></tr></table>"
    b'<a href="https://app.test/unsubscribe?a=1&amp;b=2">Unsubscribe</a>\r\n'
    b"--b1\r\nContent-Type: text/plain\r\n"
    b"Content-Disposition: attachment; filename*=utf-8''evil%00name.txt\r\n\r\n"
    b"attached text\r\n--b1--\r\n"
)


def app_for(store: Filled, **kwargs: Any) -> SandboxApp:
    config, opened, _ = store
    return make_app(config, store=opened, **kwargs)


async def add_newsletter(store: SqliteStore) -> int:
    stored = await store.ingest(
        NewMessage(
            raw=NEWSLETTER,
            envelope_from="billing@alpha.test",
            envelope_to=("larry@beta.test",),
            source="mx",
            copies=(Copy("larry@beta.test"),),
        )
    )
    return stored.copies[0].entry_id


@pytest.mark.parametrize("size", SIZES)
async def test_every_size_keeps_header_subject_status_and_footer(
    store: Filled, size: tuple[int, int]
) -> None:
    app = app_for(store)
    width, _ = size
    async with app.run_test(size=size) as pilot:
        await ready(app, pilot)
        header = str(app.main.query_one(EndpointsHeader).render())
        lines = header.split("\n")
        assert len(lines) == 2 and all(len(line) <= width for line in lines)
        assert "SMTP" in lines[0] and "127.0.0.1:1025" in lines[0] and "DNS :1053" in lines[0]
        assert "POP3 :1110" in lines[1] and "IMAP :1143" in lines[1]
        table = app.main.query_one(MessageList)
        assert "subject" in [str(c.label) for c in table.columns.values()]
        subject = next(c for c in table.columns.values() if str(c.label) == "subject")
        assert subject.width >= 16
        status = str(app.main.query_one("#status-text", Static).render())
        assert status.startswith("All mail: 7 messages")
        label = app.main.query_one("#status-label", Static)
        assert label.region.x >= app.main.query_one("#status-text", Static).region.right
        footer = app.main.query_one(Footer)
        assert footer.region.width == width
        if width >= 120:
            assert "to / mailbox" in [str(c.label) for c in table.columns.values()]


def test_header_lines_fit_and_list_any_extra_listener() -> None:
    ready = {
        "event": "ready",
        "smtp": ["127.0.0.1", 1025],
        "smtps": ["127.0.0.1", 1465],
        "pop3": ["127.0.0.1", 1110],
        "pop3s": ["127.0.0.1", 1995],
        "imap": ["127.0.0.1", 1143],
        "imaps": ["127.0.0.1", 1993],
        "dns": ["127.0.0.1", 1053],
        "http": ["127.0.0.1", 8025],
        "mx": {"alpha.test": ["127.0.0.11", 2525]},
        "data": "/home/me/sandbox.sqlite3",
    }
    wide = endpoint_lines(ready, live=True, width=200).plain.split("\n")
    assert "HTTP :8025" in wide[0] and "SMTPS :1465" in wide[0] and wide[0].endswith("live")
    assert "(TLS :1993)" in wide[1] and "data: sandbox.sqlite3" in wide[1]
    narrow = endpoint_lines(ready, live=True, width=60).plain.split("\n")
    assert all(len(line) <= 60 for line in narrow)
    assert "HTTP :8025" in narrow[0] and "DNS :1053" in narrow[0]  # essentials stay
    assert "IMAP :1143" in narrow[1]
    gone = endpoint_lines({}, live=False, width=80, data="/tmp/x.db").plain
    assert "no sandbox is running" in gone and "mail-sandbox serve --data /tmp/x.db" in gone


async def test_attached_header_follows_the_serve_process(store: Filled) -> None:
    config, _, _ = store
    app = app_for(store)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(app, pilot)
        header = app.main.query_one(EndpointsHeader)
        assert "attached" in str(header.render())
        path = endpoints_path(config.data)
        assert path is not None
        path.unlink()  # the serve process stopped
        await until(pilot, lambda: "no sandbox is running" in str(header.render()))


async def test_tree_shows_every_domain_in_order_and_held_apart(store: Filled) -> None:
    app = app_for(store)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(app, pilot)
        tree = app.main.query_one(MailboxTree)
        await until(pilot, lambda: len(tree.root.children) == 5)
        top = [str(n.label).split(" ")[0] for n in tree.root.children]
        assert top == ["All", "alpha.test", "beta.test", "gamma.test", "Held"]
        held = tree.root.children[-1]
        assert [str(n.label).split(" ")[0] for n in held.children] == ["example.com"]
        assert str(tree.root.children[0].label) == "All mail 7 · 4 new"
        # cleared, the mailboxes go; the domains stay
        tree.select_path("beta.test", "larry@beta.test")
        await until(pilot, lambda: len(listed(app)) == 2)
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: not tree.root.children[2].children)
        assert str(tree.root.children[2].label).startswith("beta.test 0")


async def test_home_end_and_escape_end_a_search(store: Filled) -> None:
    app = app_for(store)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(app, pilot)
        table = app.main.messages
        await pilot.press("end")
        assert table.cursor_row == table.row_count - 1
        await pilot.press("home")
        assert table.cursor_row == 0
        await pilot.press("slash", *"Invoice", "enter")
        await until(pilot, lambda: len(listed(app)) == 1)
        await pilot.press("escape")
        await until(pilot, lambda: len(listed(app)) == 7)
        assert app.search == ""


async def test_message_view_names_cc_rendered_html_links_and_safe_save(
    store: Filled, tmp_path: Path, monkeypatch: Any
) -> None:
    _, opened, _ = store
    entry = await add_newsletter(opened)
    urls: list[str] = []
    app = app_for(store, url_opener=urls.append)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        await until(pilot, lambda: entry in listed(app))
        screen = await open_message(app, pilot, entry)
        summary = str(screen.query_one("#message-summary", Static).render())
        assert "Billing Team <billing@alpha.test>" in summary
        assert "Larry Page <larry@beta.test>" in summary
        assert "Cc       Ann Other <ann@gamma.test>" in summary
        await pilot.press("2")
        html = str(screen.query_one("#html-body", Static).render())
        assert "News" in html and "* first" in html and "plan" in html and "pro" in html
        assert "[Unsubscribe](https://app.test/unsubscribe?a=1&b=2)" in html
        await pilot.press("o")
        await until(pilot, lambda: len(urls) == 1)
        page = Path(urls[0].removeprefix("file://"))
        assert urls[0].startswith("file://")
        assert b"<h1>News</h1>" in await asyncio.to_thread(page.read_bytes)
        await asyncio.to_thread(page.unlink)
        await pilot.press("7")
        assert screen.loaded is not None
        assert screen.loaded.links == ["https://app.test/unsubscribe?a=1&b=2"]
        # Parts: arrows work at once; a NUL in the sender's file name does not crash
        monkeypatch.chdir(tmp_path)
        await pilot.press("4")
        assert screen.query_one(TabbedContent).active == "parts"
        assert screen.focused is screen.query_one("#parts-table")
        await pilot.press("down", "down")
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, PathPrompt))
        await pilot.press("enter")
        saved = tmp_path / "evil_name.txt"
        await until(pilot, saved.exists)
        assert saved.read_bytes() == b"attached text"
        # saving again asks before replacing; "no" keeps the file as it is
        saved.write_bytes(b"mine")
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, PathPrompt))
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")
        await until(pilot, lambda: app.screen is screen)
        assert saved.read_bytes() == b"mine"
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, PathPrompt))
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: saved.read_bytes() == b"attached text")
        # a NUL typed into the path is refused with a notification, not a crash
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, PathPrompt))
        prompt = app.screen
        assert isinstance(prompt, PathPrompt)
        prompt.dismiss(str(tmp_path / "a\0b"))
        await until(pilot, lambda: app.screen is screen)
        assert not await asyncio.to_thread(lambda: list(tmp_path.glob("a*")))


async def test_palette_lists_keys_once(store: Filled) -> None:
    app = app_for(store)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(app, pilot)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert titles.count("Keys") == 1


async def test_smtp_log_shows_a_session_while_it_is_open(store: Filled) -> None:
    _, opened, _ = store
    session = {
        "server": "submission",
        "peer": "127.0.0.1:50000",
        "helo": "app.test",
        "auth_user": None,
        "tls": False,
        "messages": 0,
        "started_at": 1704186900.0,
        "transcript": ["S: 220 ESMTP mail-sandbox"],
    }
    opened.journal("smtp.progress", session)
    app = app_for(store)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(app, pilot)
        await pilot.press("S")
        await until(pilot, lambda: isinstance(app.screen, SmtpLogScreen))
        screen = app.screen
        assert isinstance(screen, SmtpLogScreen)
        table = screen.query_one("#smtp-table", DataTable)
        key = "submission 127.0.0.1:50000 1704186900.0"

        def messages_cell() -> str:
            return str(table.get_cell(key, "messages")) if key in table.rows else ""

        await until(pilot, lambda: messages_cell() == "0 (open)")
        table.move_cursor(row=table.get_row_index(key))
        await pilot.pause()
        opened.journal(
            "smtp.progress",
            {**session, "messages": 1, "transcript": [*session["transcript"], "C: DATA"]},
        )
        await until(pilot, lambda: messages_cell() == "1 (open)")
        assert "C: DATA" in str(screen.query_one("#transcript", Static).render())
        opened.journal("smtp.session", {**session, "messages": 1})
        await until(pilot, lambda: messages_cell() == "1")
        assert [k.value for k in table.rows].count(key) == 1


async def test_session_log_shows_an_imap_session_with_its_idle(store: Filled) -> None:
    """IMAP records (one per change) update one row: user, folder and IDLE, then closed."""
    _, opened, _ = store
    session = {
        "session_id": "0123abcd",
        "server": "imap",
        "peer": "127.0.0.1:50001",
        "user": "larry@beta.test",
        "tls": False,
        "started_at": 1704186960.0,
        "open": True,
        "folder": "INBOX",
        "idling": True,
        "steps": ["10:36:00.000 connected", "10:36:00.010 IDLE started"],
    }
    opened.journal("imap.session", session)
    app = app_for(store)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(app, pilot)
        await pilot.press("S")
        await until(pilot, lambda: isinstance(app.screen, SmtpLogScreen))
        screen = app.screen
        assert isinstance(screen, SmtpLogScreen)
        table = screen.query_one("#smtp-table", DataTable)

        def cells() -> tuple[str, ...]:
            if "0123abcd" not in table.rows:
                return ()
            return tuple(str(table.get_cell("0123abcd", c)) for c in ("helo", "auth", "messages"))

        await until(pilot, lambda: cells() == ("INBOX IDLE", "larry@beta.test", " (open)"))
        table.move_cursor(row=table.get_row_index("0123abcd"))
        await pilot.pause()
        assert "IDLE started" in str(screen.query_one("#transcript", Static).render())
        opened.journal("imap.session", {**session, "open": False, "idling": False})
        await until(pilot, lambda: cells() == ("INBOX", "larry@beta.test", ""))
        assert [k.value for k in table.rows].count("0123abcd") == 1


def test_a_bounce_names_the_copy_it_is_about() -> None:
    hop = Hop("bounce", "generated", {"failed": ["x@beta.test"], "about": 5, "about_message": 3})
    assert describe(hop) == "about #5 failed: x@beta.test"
