"""The store on one SQLite file (WAL), written by a single group-committing writer.

Theory of operation: every write is a job (an async function of the connection) put on
one queue. The writer task takes whatever is queued, runs it all inside one transaction
and commits once, then resolves each job's future. Many concurrent SMTP deliveries so
share one fsync, and a caller that awaits its job knows its data is committed — which is
what lets the SMTP server say 250 only after the commit. If any job in a batch fails, the
batch is rolled back and its jobs are run again one transaction each, so one bad job
never costs the others their data.

Reads use a second connection (WAL lets them run beside the writer); an in-memory
database has one connection for both, since two ``:memory:`` connections are two
databases.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from sandbox.config import MEMORY
from sandbox.mime import summarize
from sandbox.store.models import (
    INBOX,
    QUEUED,
    SENT,
    TRASH,
    Delivery,
    Hop,
    MessageFilter,
    MessageRecord,
    NewMessage,
    StoredCopy,
    StoredMessage,
    domain_of,
    normalize_address,
)
from sandbox.store.tags import tag_arrivals

log = logging.getLogger(__name__)

T = TypeVar("T")
Job = Callable[[aiosqlite.Connection], Awaitable[Any]]
MAX_BATCH = 256
DEFAULT_FOLDERS = (INBOX, SENT, TRASH)
ALL = MessageFilter()  # made with every mailbox by the migration's trigger
BUSY_TIMEOUT_MS = 10_000


class StoreError(RuntimeError):
    """The store could not do what was asked; the message says what to do."""


@dataclass
class _Pending:
    job: Job
    future: asyncio.Future[Any] | None
    ingest: NewMessage | None = None  # set for messages, so a run of them is one batch


def _migrations() -> list[tuple[int, str]]:
    folder = resources.files("sandbox.store") / "migrations"
    found = []
    for item in folder.iterdir():
        if item.name.endswith(".sql"):
            number = int(item.name.split("_", 1)[0])
            found.append((number, item.read_text(encoding="utf-8")))
    return sorted(found)


async def _connect(path: str, *, read_only: bool = False) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path, isolation_level=None)
    await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    await conn.execute("PRAGMA foreign_keys = ON")
    if path != MEMORY:
        await conn.execute("PRAGMA journal_mode = WAL")
        # WAL with synchronous=NORMAL survives a process crash without losing a commit;
        # only a power cut can lose the last transactions, acceptable for a dev sandbox.
        await conn.execute("PRAGMA synchronous = NORMAL")
    if read_only:
        await conn.execute("PRAGMA query_only = ON")
    return conn


async def _migrate(conn: aiosqlite.Connection) -> None:
    """Apply numbered migrations in order; safe when two processes open the file at once."""
    await conn.execute("BEGIN IMMEDIATE")
    try:
        async with conn.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        version = int(row[0]) if row else 0
        for number, script in _migrations():
            if number > version:
                for statement in _split_sql(script):
                    await conn.execute(statement)
                await conn.execute(f"PRAGMA user_version = {number}")
        await conn.execute("COMMIT")
    except BaseException:
        await conn.execute("ROLLBACK")
        raise


def _split_sql(script: str) -> list[str]:
    """Statements of a migration file (executescript would commit our transaction)."""
    statements: list[str] = []
    current: list[str] = []
    in_trigger = False
    for line in script.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("--")):
            continue
        current.append(line)
        upper = stripped.upper()
        if upper.startswith("CREATE TRIGGER"):
            in_trigger = True
        if (in_trigger and upper == "END;") or (not in_trigger and stripped.endswith(";")):
            statements.append("\n".join(current))
            current = []
            in_trigger = False
    if any(line.strip() for line in current):
        statements.append("\n".join(current))
    return statements


class SqliteStore:
    """The single source of truth. Create with ``await SqliteStore.open(path)``."""

    def __init__(
        self, path: str, writer: aiosqlite.Connection, reader: aiosqlite.Connection
    ) -> None:
        self.path = path
        self._writer_conn = writer
        self._reader = reader
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._writer_task: asyncio.Task[None] | None = None
        self._closed = False
        self._journal_rows: list[tuple[float, str, str]] = []
        self._journal_flush_queued = False

    @classmethod
    async def open(cls, path: str) -> SqliteStore:
        if path != MEMORY:
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the folder for {path}: {exc.strerror}") from None
        try:
            writer = await _connect(path)
            await _migrate(writer)
            reader = writer if path == MEMORY else await _connect(path, read_only=True)
        except (OSError, aiosqlite.Error) as exc:
            raise StoreError(f"cannot open the data file {path}: {exc}") from None
        store = cls(path, writer, reader)
        store._writer_task = asyncio.get_running_loop().create_task(store._write_loop())
        return store

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put_nowait(None)
        if self._writer_task is not None:
            await self._writer_task
        if self._reader is not self._writer_conn:
            await self._reader.close()
        await self._writer_conn.close()

    # --- the writer -----------------------------------------------------------------

    async def write(self, job: Callable[[aiosqlite.Connection], Awaitable[T]]) -> T:
        """Run ``job`` in the next group commit; return once it is committed."""
        if self._closed:
            raise StoreError("the store is closed")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(job, future))
        return await future

    def write_later(self, job: Job) -> None:
        """Queue a write nobody waits for (the journal); failures are logged."""
        if not self._closed:
            self._queue.put_nowait(_Pending(job, None))

    async def _write_loop(self) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            await self._commit_batch(batch)

    async def _commit_batch(self, batch: list[_Pending]) -> None:
        conn = self._writer_conn
        results: list[Any] = []
        try:
            await conn.execute("BEGIN IMMEDIATE")
            for run in _runs(batch):
                if run[0].ingest is not None:
                    results += await _ingest_many(conn, [p.ingest for p in run if p.ingest])
                else:
                    results += [await pending.job(conn) for pending in run]
            await conn.execute("COMMIT")
        except Exception as exc:
            with contextlib.suppress(Exception):
                await conn.execute("ROLLBACK")
            if len(batch) > 1:
                for pending in batch:  # find the bad job; the others still commit
                    await self._commit_batch([pending])
                return
            _settle(batch[0], None, exc)
            return
        for pending, result in zip(batch, results, strict=True):
            _settle(pending, result, None)

    # --- messages -------------------------------------------------------------------

    async def ingest(self, message: NewMessage) -> StoredMessage:
        """Store a message once and a copy per mailbox folder; returns once committed."""
        if self._closed:
            raise StoreError("the store is closed")
        future: asyncio.Future[StoredMessage] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(_ingest_job(message), future, message))
        return await future

    async def add_hops(self, message_id: int, hops: Iterable[Hop]) -> None:
        hops = tuple(hops)

        async def job(conn: aiosqlite.Connection) -> None:
            await _insert_hops(conn, message_id, hops)

        await self.write(job)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a read query on the reader connection (for modules that own their own SQL)."""
        return [tuple(row) for row in await self._reader.execute_fetchall(sql, params)]

    async def list_messages(
        self, flt: MessageFilter = ALL, *, limit: int | None = None
    ) -> list[MessageRecord]:
        where, params = _filter_sql(flt)
        sql = _RECORD_SELECT + where + " ORDER BY e.id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        rows = await self._reader.execute_fetchall(sql, params)
        return [_record(row) for row in rows]

    async def newest_message(self, flt: MessageFilter = ALL) -> MessageRecord | None:
        where, params = _filter_sql(flt)
        rows = await self._reader.execute_fetchall(
            _RECORD_SELECT + where + " ORDER BY e.id DESC LIMIT 1", params
        )
        return _record(next(iter(rows))) if rows else None

    async def last_id(self) -> int:
        """The highest message copy id ever given (ids are never reused)."""
        rows = await self._reader.execute_fetchall(
            "SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'entries'"
        )
        return int(next(iter(rows))[0])

    async def get_message(self, entry_id: int) -> MessageRecord | None:
        rows = await self._reader.execute_fetchall(_RECORD_SELECT + " WHERE e.id = ?", (entry_id,))
        return _record(next(iter(rows))) if rows else None

    async def raw(self, message_id: int) -> bytes | None:
        rows = await self._reader.execute_fetchall(
            "SELECT raw FROM messages WHERE id = ?", (message_id,)
        )
        return bytes(next(iter(rows))[0]) if rows else None

    async def journey(self, message_id: int, domain: str | None = None) -> tuple[Hop, ...]:
        """The hops of a message and of the messages it was relayed from, in time order.

        With ``domain``, an ancestor's hops about other domains' deliveries are left out:
        the copy in larry@beta.test does not need gamma.test's retries.
        """
        rows = await self._reader.execute_fetchall(
            "WITH RECURSIVE chain (id, depth) AS (SELECT ?, 0 UNION ALL"
            " SELECT m.parent_id, c.depth + 1 FROM messages m JOIN chain c ON m.id = c.id"
            " WHERE m.parent_id IS NOT NULL AND c.depth < 30)"
            " SELECT h.step, h.outcome, h.detail, h.at, c.depth FROM hops h"
            " JOIN chain c ON h.message_id = c.id ORDER BY h.at, h.id",
            (message_id,),
        )
        hops = []
        for step, outcome, detail_text, at, depth in rows:
            detail = json.loads(detail_text)
            if depth and domain is not None and detail.get("domain") not in (None, domain):
                continue
            hops.append(Hop(step, outcome, detail, at))
        return tuple(hops)

    async def journey_of(self, record: MessageRecord) -> tuple[Hop, ...]:
        """The journey as this copy's mailbox saw it."""
        return await self.journey(record.message_id, domain_of(record.mailbox))

    # --- the relay queue ------------------------------------------------------------

    async def due_deliveries(
        self, now: float, limit: int, exclude: Iterable[int] = ()
    ) -> list[Delivery]:
        excluded = json.dumps(sorted(exclude))
        rows = await self._reader.execute_fetchall(
            _DELIVERY_SELECT + " WHERE d.state IN ('queued', 'deferred') AND d.next_attempt_at <= ?"
            " AND d.id NOT IN (SELECT value FROM json_each(?))"
            " ORDER BY d.next_attempt_at, d.id LIMIT ?",
            (now, excluded, limit),
        )
        return [_delivery(row) for row in rows]

    async def next_attempt_at(self, exclude: Iterable[int] = ()) -> float | None:
        rows = await self._reader.execute_fetchall(
            "SELECT min(next_attempt_at) FROM deliveries WHERE state IN ('queued', 'deferred')"
            " AND id NOT IN (SELECT value FROM json_each(?))",
            (json.dumps(sorted(exclude)),),
        )
        value = next(iter(rows))[0]
        return float(value) if value is not None else None

    async def pending_deliveries(self) -> list[Delivery]:
        rows = await self._reader.execute_fetchall(
            _DELIVERY_SELECT + " WHERE d.state IN ('queued', 'deferred') ORDER BY d.id"
        )
        return [_delivery(row) for row in rows]

    async def deliveries_of(self, message_id: int) -> list[Delivery]:
        rows = await self._reader.execute_fetchall(
            _DELIVERY_SELECT + " WHERE d.message_id = ? ORDER BY d.id", (message_id,)
        )
        return [_delivery(row) for row in rows]

    async def finish_attempt(
        self,
        delivery: Delivery,
        *,
        state: str,
        recipients: tuple[str, ...],
        next_attempt_at: float,
        last_reply: str | None,
        hops: Iterable[Hop],
    ) -> None:
        """Record one attempt's outcome and its hops in one transaction."""
        hops = tuple(hops)

        async def job(conn: aiosqlite.Connection) -> None:
            await conn.execute(
                "UPDATE deliveries SET state = ?, recipients = ?, attempts = attempts + 1,"
                " next_attempt_at = ?, last_reply = ?, updated_at = ? WHERE id = ?",
                (
                    state,
                    json.dumps(list(recipients)),
                    next_attempt_at,
                    last_reply,
                    time.time(),
                    delivery.id,
                ),
            )
            await _insert_hops(conn, delivery.message_id, hops)

        await self.write(job)

    async def retry_now(self) -> int:
        """Make every delivery not yet done due at once; returns how many."""

        async def job(conn: aiosqlite.Connection) -> int:
            cur = await conn.execute(
                "UPDATE deliveries SET next_attempt_at = ? WHERE state IN ('queued', 'deferred')",
                (time.time(),),
            )
            return cur.rowcount

        return await self.write(job)

    # --- chaos settings shared with other processes ---------------------------------

    async def set_chaos(self, domain: str, settings: dict[str, Any] | None) -> None:
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

        await self.write(job)

    async def chaos(self) -> dict[str, dict[str, Any]]:
        rows = await self._reader.execute_fetchall("SELECT domain, settings FROM chaos")
        return {r[0]: json.loads(r[1]) for r in rows}

    async def count_messages(self) -> int:
        rows = await self._reader.execute_fetchall("SELECT count(*) FROM entries")
        return int(next(iter(rows))[0])

    async def prune(self, *, max_messages: int, max_age: float, grace: float) -> int:
        """Delete the oldest messages beyond ``max_messages`` or older than ``max_age``
        seconds (0: no limit). Never one received in the last ``grace`` seconds, nor one
        the relay still has to deliver. Returns how many messages went."""
        now = time.time()

        async def job(conn: aiosqlite.Connection) -> int:
            keep_after = now - grace
            doomed: set[int] = set()
            if max_age > 0:
                rows = await conn.execute_fetchall(
                    "SELECT id FROM messages WHERE received_at < ? AND received_at < ?",
                    (now - max_age, keep_after),
                )
                doomed.update(int(r[0]) for r in rows)
            if max_messages > 0:
                rows = await conn.execute_fetchall(
                    "SELECT id FROM messages WHERE received_at < ? AND id NOT IN"
                    " (SELECT id FROM messages ORDER BY id DESC LIMIT ?)",
                    (keep_after, max_messages),
                )
                doomed.update(int(r[0]) for r in rows)
            if not doomed:
                return 0
            ids = json.dumps(sorted(doomed))
            cur = await conn.execute(
                "DELETE FROM messages WHERE id IN (SELECT value FROM json_each(?))"
                " AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id = messages.id"
                " AND d.state IN ('queued', 'deferred'))",
                (ids,),
            )
            return cur.rowcount

        return await self.write(job)

    async def clear(self) -> int:
        """Delete every message; mailboxes and folders stay, so UIDs keep ascending."""

        async def job(conn: aiosqlite.Connection) -> int:
            async with conn.execute("SELECT count(*) FROM entries") as cur:
                row = await cur.fetchone()
            await conn.execute("DELETE FROM entries")
            await conn.execute("DELETE FROM hops")
            await conn.execute("DELETE FROM messages")
            return int(row[0]) if row else 0

        return await self.write(job)

    # --- the journal ----------------------------------------------------------------

    def journal(self, kind: str, data: dict[str, Any], at: float | None = None) -> None:
        """Record an event; written with the next commit, not waited for.

        Events are buffered and written by one job a commit, so a busy server pays one
        statement per batch for its journal rather than one per event.
        """
        self._journal_rows.append(
            (at if at is not None else time.time(), kind, json.dumps(data, default=str))
        )
        if not self._journal_flush_queued:
            self._journal_flush_queued = True
            self.write_later(self._journal_job())

    def _journal_job(self) -> Job:
        taken: list[tuple[float, str, str]] = []

        async def job(conn: aiosqlite.Connection) -> None:
            if not taken:  # first run takes the buffer; a retry writes the same rows
                taken.extend(self._journal_rows)
                self._journal_rows.clear()
                self._journal_flush_queued = False
            await conn.executemany("INSERT INTO events (at, kind, data) VALUES (?, ?, ?)", taken)

        return job

    async def events(
        self, *, kind: str | None = None, after_id: int = 0, limit: int = 1000
    ) -> list[tuple[int, float, str, dict[str, Any]]]:
        sql = "SELECT id, at, kind, data FROM events WHERE id > ?"
        params: list[Any] = [after_id]
        if kind is not None:
            sql += " AND kind = ?"
            params.append(kind)
        sql += " ORDER BY id LIMIT ?"
        params.append(limit)
        rows = await self._reader.execute_fetchall(sql, params)
        return [(r[0], r[1], r[2], json.loads(r[3])) for r in rows]

    # --- single copies, as the TUI changes them ---------------------------------------

    async def delete_entries(self, entry_ids: Sequence[int]) -> list[tuple[int, int, str, str]]:
        """Delete these copies; a message goes with its last copy unless the relay still
        has a delivery for it (queued or deferred). Returns (entry id, uid, mailbox, folder)
        of the copies deleted, for the caller's ``EntriesExpunged`` events."""
        ids = json.dumps(sorted(set(entry_ids)))

        async def job(conn: aiosqlite.Connection) -> list[tuple[int, int, str, str]]:
            rows = await conn.execute_fetchall(
                "SELECT e.id, e.uid, mb.address, f.name, e.message_id FROM entries e"
                " JOIN folders f ON f.id = e.folder_id JOIN mailboxes mb ON mb.id = f.mailbox_id"
                " WHERE e.id IN (SELECT value FROM json_each(?))",
                (ids,),
            )
            await conn.execute(
                "DELETE FROM entries WHERE id IN (SELECT value FROM json_each(?))", (ids,)
            )
            await conn.execute(
                "DELETE FROM messages WHERE id IN (SELECT value FROM json_each(?))"
                " AND NOT EXISTS (SELECT 1 FROM entries WHERE message_id = messages.id)"
                " AND NOT EXISTS (SELECT 1 FROM deliveries WHERE message_id = messages.id"
                " AND state IN ('queued', 'deferred'))",
                (json.dumps(sorted({int(r[4]) for r in rows})),),
            )
            return [(int(r[0]), int(r[1]), str(r[2]), str(r[3])) for r in rows]

        return await self.write(job)

    async def set_seen(
        self, entry_ids: Sequence[int], seen: bool
    ) -> list[tuple[int, int, str, str, tuple[str, ...]]]:
        """Add or remove ``\\Seen`` (RFC 3501 §2.3.2) on these copies; returns the copies
        that changed as (entry id, uid, mailbox, folder, new flags) for ``FlagsChanged``."""
        ids = json.dumps(sorted(set(entry_ids)))

        async def job(
            conn: aiosqlite.Connection,
        ) -> list[tuple[int, int, str, str, tuple[str, ...]]]:
            rows = await conn.execute_fetchall(
                "SELECT e.id, e.uid, mb.address, f.name, e.flags FROM entries e"
                " JOIN folders f ON f.id = e.folder_id JOIN mailboxes mb ON mb.id = f.mailbox_id"
                " WHERE e.id IN (SELECT value FROM json_each(?))",
                (ids,),
            )
            changed: list[tuple[int, int, str, str, tuple[str, ...]]] = []
            for entry_id, uid, mailbox, folder, text in rows:
                current = tuple(str(text).split())
                has = any(f.lower() == "\\seen" for f in current)
                if has == seen:
                    continue
                new = (
                    (*current, "\\Seen")
                    if seen
                    else tuple(f for f in current if f.lower() != "\\seen")
                )
                changed.append((int(entry_id), int(uid), str(mailbox), str(folder), new))
            await conn.executemany(
                "UPDATE entries SET flags = ? WHERE id = ?",
                [(" ".join(c[4]), c[0]) for c in changed],
            )
            return changed

        return await self.write(job)


_RECORD_SELECT = (
    "SELECT e.id, e.message_id, mb.address, f.name, e.uid, e.flags, e.held, m.header_from,"
    " m.header_to, m.header_cc, m.subject, m.date, m.message_id, m.size, m.received_at,"
    " m.envelope_from"
    " FROM entries e JOIN folders f ON f.id = e.folder_id"
    " JOIN mailboxes mb ON mb.id = f.mailbox_id JOIN messages m ON m.id = e.message_id"
)


_DELIVERY_SELECT = (
    "SELECT d.id, d.message_id, d.domain, d.envelope_from, d.recipients, d.state, d.attempts,"
    " d.next_attempt_at, d.last_reply, d.created_at, d.updated_at, m.subject"
    " FROM deliveries d JOIN messages m ON m.id = d.message_id"
)


def _delivery(row: Any) -> Delivery:
    return Delivery(
        id=row[0],
        message_id=row[1],
        domain=row[2],
        envelope_from=row[3],
        recipients=tuple(json.loads(row[4])),
        state=row[5],
        attempts=row[6],
        next_attempt_at=row[7],
        last_reply=row[8],
        created_at=row[9],
        updated_at=row[10],
        subject=row[11],
    )


def _record(row: Any) -> MessageRecord:
    return MessageRecord(
        id=row[0],
        message_id=row[1],
        mailbox=row[2],
        folder=row[3],
        uid=row[4],
        flags=tuple(row[5].split()),
        held=bool(row[6]),
        from_addr=row[7],
        to=tuple(json.loads(row[8])),
        cc=tuple(json.loads(row[9])),
        subject=row[10],
        date=row[11],
        header_message_id=row[12],
        size=row[13],
        received_at=row[14],
        envelope_from=row[15],
    )


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _filter_sql(flt: MessageFilter) -> tuple[str, list[Any]]:
    clauses = ["e.id > ?"]
    params: list[Any] = [flt.after_id]
    if flt.to:
        to = normalize_address(flt.to)
        if "@" in to and not to.startswith("@"):
            clauses.append("mb.address = ?")
            params.append(to)
        else:
            clauses.append("mb.domain = ?")
            params.append(to.lstrip("@"))
    if flt.sender:
        sender = normalize_address(flt.sender)
        if "@" in sender and not sender.startswith("@"):
            clauses.append("(lower(m.header_from) = ? OR lower(m.envelope_from) = ?)")
            params += [sender, sender]
        else:
            pattern = "%@" + _like_escape(sender.lstrip("@"))
            clauses.append(
                "(lower(m.header_from) LIKE ? ESCAPE '\\'"
                " OR lower(m.envelope_from) LIKE ? ESCAPE '\\')"
            )
            params += [pattern, pattern]
    if flt.subject:
        clauses.append("m.subject LIKE ? ESCAPE '\\'")
        params.append("%" + _like_escape(flt.subject) + "%")
    if flt.folder:
        clauses.append("f.name = ?")
        params.append(flt.folder)
    return " WHERE " + " AND ".join(clauses), params


def _runs(batch: list[_Pending]) -> list[list[_Pending]]:
    """Split a batch into runs of messages and runs of other jobs, keeping their order."""
    runs: list[list[_Pending]] = []
    for pending in batch:
        if runs and (runs[-1][0].ingest is None) == (pending.ingest is None):
            runs[-1].append(pending)
        else:
            runs.append([pending])
    return runs


def _ingest_job(message: NewMessage) -> Job:
    async def job(conn: aiosqlite.Connection) -> StoredMessage:
        return (await _ingest_many(conn, [message]))[0]

    return job


async def _ingest_many(conn: aiosqlite.Connection, items: list[NewMessage]) -> list[StoredMessage]:
    """Insert a run of messages with a fixed number of statements, however many there are.

    Runs inside the writer's transaction (BEGIN IMMEDIATE), so nobody else can take ids
    or UIDs between the reads here and the inserts.
    """
    mailboxes = sorted({c.mailbox for m in items for c in m.copies})
    await conn.executemany(
        "INSERT INTO mailboxes (address, domain, created_at) VALUES (?, ?, ?)"
        " ON CONFLICT (address) DO NOTHING",
        [(m, domain_of(m), items[0].received_at) for m in mailboxes],
    )
    extra_folders = {(c.mailbox, c.folder) for m in items for c in m.copies} - {
        (mb, name) for mb in mailboxes for name in DEFAULT_FOLDERS
    }
    if extra_folders:
        await conn.executemany(
            "INSERT INTO folders (mailbox_id, name, uidvalidity)"
            " SELECT id, ?, max(CAST(strftime('%s', 'now') AS INTEGER),"
            " (SELECT coalesce(max(uidvalidity), 0) + 1 FROM folders))"
            " FROM mailboxes WHERE address = ? ON CONFLICT (mailbox_id, name) DO NOTHING",
            [(folder, mailbox) for mailbox, folder in sorted(extra_folders)],
        )
    folder_rows = await conn.execute_fetchall(
        "SELECT f.id, f.uidnext, m.address, f.name FROM folders f"
        " JOIN mailboxes m ON m.id = f.mailbox_id"
        " WHERE m.address IN (SELECT value FROM json_each(?))",
        (json.dumps(mailboxes),),
    )
    folders = {(r[2], r[3]): [int(r[0]), int(r[1])] for r in folder_rows}
    id_rows = await conn.execute_fetchall(
        "SELECT (SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'messages'),"
        " (SELECT coalesce(max(id), 0) FROM messages),"
        " (SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'entries'),"
        " (SELECT coalesce(max(id), 0) FROM entries),"
        " (SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'deliveries')"
    )
    ids = next(iter(id_rows))
    next_message, next_entry = max(ids[0], ids[1]) + 1, max(ids[2], ids[3]) + 1
    next_delivery = ids[4] + 1

    message_rows: list[tuple[Any, ...]] = []
    delivery_rows: list[tuple[Any, ...]] = []
    entry_rows: list[tuple[Any, ...]] = []
    hop_rows: list[tuple[Any, ...]] = []
    stored: list[StoredMessage] = []
    for message in items:
        summary = summarize(message.raw)
        message_id = next_message
        next_message += 1
        message_rows.append(
            (
                message_id,
                message.raw,
                len(message.raw),
                message.envelope_from,
                json.dumps(list(message.envelope_to)),
                summary.from_addr,
                json.dumps(list(summary.to)),
                json.dumps(list(summary.cc)),
                summary.subject,
                summary.date,
                summary.message_id,
                message.received_at,
                message.source,
                message.queue_id,
                message.parent_queue_id,
            )
        )
        delivery_ids = []
        for delivery in message.deliveries:
            delivery_rows.append(
                (
                    next_delivery,
                    message_id,
                    delivery.domain,
                    message.envelope_from,
                    json.dumps(list(delivery.recipients)),
                    QUEUED,
                    message.received_at,
                    message.received_at,
                    message.received_at,
                )
            )
            delivery_ids.append(next_delivery)
            next_delivery += 1
        copies = []
        for copy in message.copies:
            folder = folders[(copy.mailbox, copy.folder)]
            uid = folder[1]
            folder[1] += 1
            entry_rows.append(
                (
                    next_entry,
                    folder[0],
                    uid,
                    message_id,
                    " ".join(copy.flags),
                    int(copy.held),
                    message.received_at,
                )
            )
            copies.append(StoredCopy(next_entry, copy.mailbox, copy.folder, uid))
            next_entry += 1
        hop_rows += [_hop_row(message_id, hop) for hop in message.hops]
        stored.append(
            StoredMessage(message_id, tuple(copies), summary.subject, tuple(delivery_ids))
        )

    await conn.executemany(
        "INSERT INTO messages (id, raw, size, envelope_from, envelope_to, header_from,"
        " header_to, header_cc, subject, date, message_id, received_at, source, queue_id,"
        " parent_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
        " (SELECT max(id) FROM messages WHERE queue_id = ?))",
        message_rows,
    )
    if delivery_rows:
        await conn.executemany(
            "INSERT INTO deliveries (id, message_id, domain, envelope_from, recipients, state,"
            " next_attempt_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            delivery_rows,
        )
    await conn.executemany(
        "INSERT INTO entries (id, folder_id, uid, message_id, flags, held, added_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        entry_rows,
    )
    await tag_arrivals(conn, items, stored)  # Mailpit's X-Tags and plus-address tags
    if hop_rows:
        await conn.executemany(
            "INSERT INTO hops (message_id, at, step, outcome, detail) VALUES (?, ?, ?, ?, ?)",
            hop_rows,
        )
    return stored


def _hop_row(message_id: int, hop: Hop) -> tuple[Any, ...]:
    return (message_id, hop.at, hop.step, hop.outcome, json.dumps(dict(hop.detail)))


async def _insert_hops(conn: aiosqlite.Connection, message_id: int, hops: Iterable[Hop]) -> None:
    await conn.executemany(
        "INSERT INTO hops (message_id, at, step, outcome, detail) VALUES (?, ?, ?, ?, ?)",
        [_hop_row(message_id, hop) for hop in hops],
    )


def _settle(pending: _Pending, result: Any, error: BaseException | None) -> None:
    future = pending.future
    if future is None:
        if error is not None:
            log.error("a background write failed: %s", error)
        return
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
