"""No per-command statement reads a whole big table (issue 16: cost independent of size).

Theory of operation: the store reports every statement its connections run (``trace``).
Each hot path below is driven over real sockets with real clients (IMAP SELECT, FETCH,
STORE, SEARCH, APPEND, EXPUNGE; a POP3 maildrop; SMTP ingest and relay; the HTTP API's
list, search and message) or through the functions the TUI and CLI call, against a small
populated store. Then ``EXPLAIN QUERY PLAN`` of each statement seen must not contain a
``SCAN`` of a table that grows with the store. SQLite picks the same plan on a small
file as on a big one when no statistics exist (nothing runs ANALYZE), so the small store
shows the plan the million-message store would get.

A new hot path is one more function in ``PATHS``; a statement that may scan (clearing
everything, retention, journal trimming) goes in ``MAY_SCAN`` with its reason.
"""

from __future__ import annotations

import asyncio
import imaplib
import json
import poplib
import re
import smtplib
import urllib.request
from collections.abc import Awaitable, Callable
from email.message import EmailMessage

from sandbox.store import SqliteStore
from sandbox.store import tui_views as queries
from sandbox.testing import AsyncSandbox

GROWING = ("messages", "entries", "events", "hops", "changes", "deliveries", "entry_tags")

# Statements (regular expressions over their shape) allowed to scan, each with why.
MAY_SCAN: dict[str, str] = {
    r"^SELECT e\.id, .* FROM entries e JOIN .* ORDER BY e\.id DESC LIMIT \?( OFFSET \?)?$": (
        "the newest page of every copy: read in id order, stops after LIMIT rows"
    ),
    # Not yet met (issue 16): totals are counted, not kept. A counter table kept by
    # triggers on entries would make these constant; until then they grow with the store.
    r"^SELECT \(SELECT count\(\*\) FROM entries\)": "open: the HTTP API's total and unread",
    r"^SELECT count\(\*\) FROM entries$": "open: the TUI's total",
    r"^SELECT tag, count\(\*\) FROM entry_tags GROUP BY tag": "open: the tag list",
}

SMALL_STORE = 30


def _message(n: int, to: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = f"app{n % 3}@alpha.test"
    msg["To"] = to
    msg["Subject"] = f"order {n} shipped"
    msg.set_content(f"Hello {n}\n" * 20)
    return msg


def _smtp(box: AsyncSandbox) -> None:
    host, port = box.smtp_address
    with smtplib.SMTP(host, port) as smtp:
        for n in range(SMALL_STORE):
            to = "bob@beta.test" if n % 2 else "carol@example.com"
            smtp.send_message(_message(n, to))


def _imap(box: AsyncSandbox) -> None:
    host, port = box.imap_address
    imap = imaplib.IMAP4(host, port)
    imap.login("bob@beta.test", "x")
    imap.list()
    imap.status("INBOX", "(MESSAGES UIDNEXT UNSEEN)")
    imap.select("INBOX")
    imap.fetch("1:*", "(FLAGS UID RFC822.SIZE)")
    imap.fetch("2", "(BODY.PEEK[HEADER.FIELDS (FROM SUBJECT DATE)])")
    imap.uid("FETCH", "1:*", "(FLAGS)")
    imap.fetch("3", "(BODY[])")
    imap.fetch("4", "(BODYSTRUCTURE ENVELOPE INTERNALDATE)")
    imap.store("1", "+FLAGS", "(\\Flagged $Label1)")
    imap.store("2", "-FLAGS", "(\\Seen)")
    imap.search(None, "UNSEEN")
    imap.search(None, "SUBJECT", "order")
    imap.uid("SEARCH", "FROM", "app1")
    imap.append("INBOX", "(\\Seen)", None, _message(99, "bob@beta.test").as_bytes())
    imap.store("5", "+FLAGS", "(\\Deleted)")
    imap.expunge()
    imap.copy("1", "Trash")
    imap.noop()
    imap.close()
    imap.logout()


def _pop3(box: AsyncSandbox) -> None:
    host, port = box.pop3_address
    pop = poplib.POP3(host, port)
    pop.user("carol@example.com")
    pop.pass_("x")
    pop.stat()
    pop.list()
    pop.uidl()
    pop.retr(1)
    pop.top(2, 0)
    pop.dele(1)
    pop.quit()


def _http(box: AsyncSandbox) -> None:
    def get(path: str) -> object:
        with urllib.request.urlopen(box.http_url + path) as reply:
            return json.loads(reply.read())

    listing = get("/api/v1/messages?limit=10")
    assert isinstance(listing, dict)
    first = listing["messages"][0]["ID"]
    get("/api/v1/messages?start=5&limit=5")
    get("/api/v1/search?query=subject:order")
    get("/api/v1/search?query=to:bob@beta.test")
    get(f"/api/v1/message/{first}")
    get(f"/api/v1/message/{first}/headers")
    get(f"/api/v1/message/{first}/journey")


async def _tui_and_cli(store: SqliteStore) -> None:
    records = await store.list_messages(limit=50)
    record = records[0]
    await store.get_message(record.id)
    await store.raw(record.message_id)
    await store.journey_of(record)
    await store.newest_message()
    await store.last_id()
    await store.pending_deliveries()
    query = queries.ListQuery()
    await queries.window(store, query, limit=50)
    await queries.window(store, queries.ListQuery(mailbox="bob@beta.test"), limit=50)
    await queries.count(store, query)
    await queries.envelope(store, record.message_id)


Path = Callable[[AsyncSandbox], None]
PATHS: tuple[Path, ...] = (_smtp, _imap, _pop3, _http)


def _scans(plan: list[tuple[object, ...]], sql: str) -> list[str]:
    """The plan lines that read a whole growing table (by name or by alias)."""
    names = set(GROWING)
    for table, alias in re.findall(r"\b(?:FROM|JOIN)\s+(\w+)(?:\s+(?:AS\s+)?(\w+))?", sql, re.I):
        if table.lower() in GROWING and alias and alias.upper() not in _KEYWORDS:
            names.add(alias.lower())
    found = []
    for row in plan:
        detail = str(row[-1])
        match = re.match(r"SCAN (\w+)", detail)
        if match and match.group(1).lower() in names:
            found.append(detail)
    return found


_KEYWORDS = {"WHERE", "JOIN", "ON", "LEFT", "INNER", "ORDER", "GROUP", "LIMIT", "USING", "SET"}


async def test_no_hot_statement_scans_a_growing_table() -> None:
    async with AsyncSandbox() as box:
        store = box.runtime.store
        seen: list[str] = []
        await store.trace(seen.append)
        for path in PATHS:
            await asyncio.to_thread(path, box)
            if path is _smtp:
                await box.wait_for(to="bob@beta.test", subject=f"order {SMALL_STORE - 1} ")
        tui: Callable[[SqliteStore], Awaitable[None]] = _tui_and_cli
        await tui(store)
        await store.trace(None)

        # One example of each statement: the trace shows parameters as literals.
        statements: dict[str, str] = {}
        for sql in seen:
            sql = " ".join(sql.split())
            if re.match(r"(SELECT|UPDATE|DELETE|INSERT|WITH)\b", sql, re.I):
                statements.setdefault(_shape(sql), sql)
        assert len(statements) > 20, statements  # the paths really ran
        bad: dict[str, list[str]] = {}
        for shape, sql in sorted(statements.items()):
            if any(re.search(pattern, shape) for pattern in MAY_SCAN):
                continue
            plan = await store.fetchall("EXPLAIN QUERY PLAN " + sql)
            scans = _scans(plan, sql)
            if scans:
                bad[shape] = scans
        assert not bad, "\n\n".join(f"{shape}\n  -> {scans}" for shape, scans in bad.items())


def _shape(sql: str) -> str:
    """The statement with its literals as ``?``, so each statement is checked once."""
    sql = re.sub(r"x'[0-9a-fA-F]*'|'(?:[^']|'')*'", "?", sql)
    sql = re.sub(r"(?<![\w.])-?\d+(?:\.\d+)?(?:e[+-]?\d+)?\b", "?", sql)
    return re.sub(r"\?(?:\s*,\s*\?)+", "?", sql)
