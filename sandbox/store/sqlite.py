"""The store on one SQLite file (WAL), written by a single group-committing writer.

Theory of operation: every write is a job (an async function of the connection) put on
one queue. The writer task takes whatever is queued, runs it all inside one transaction
and commits once, then resolves each job's future. Many concurrent SMTP deliveries so
share one fsync, and a caller that awaits its job knows its data is committed — which is
what lets the SMTP server say 250 only after the commit. If any job in a batch fails, the
batch is rolled back and its jobs are run again one transaction each, so one bad job
never costs the others their data.

Commit, then announce: ``commit(job)`` runs a job that returns its result and the events
it caused; the events' rows go into the ``changes`` table in the same transaction, and
only once that transaction has committed are the events published on the store's bus
(a listener that fails is logged by the bus, never turned into the caller's error).
Other processes on the file read those rows through the change feed (``feed.py``).

Reads use a second connection (WAL lets them run beside the writer), and the feed a third;
an in-memory database has one connection for all, since two ``:memory:`` connections are
two databases (and no other process can share it).

Two processes writing at once: each transaction waits for the other's lock
(``busy_timeout``) and a batch that still finds the file locked is tried again, for up to
``LOCKED_RETRY_SECONDS`` in all, before the caller is told the file is busy.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import aiosqlite

from sandbox.config import MEMORY
from sandbox.events import (
    Event,
    EventBus,
)
from sandbox.store import changes, chaos, deliveries, journal, messages, retention, views
from sandbox.store.feed import ChangeFeed
from sandbox.store.messages import Summarized, ingest_events, ingest_many, insert_hops, summarized
from sandbox.store.models import (
    Delivery,
    Hop,
    MessageFilter,
    MessageRecord,
    NewMessage,
    StoredMessage,
    domain_of,
)
from sandbox.store.views import ALL

log = logging.getLogger(__name__)

T = TypeVar("T")
Job = Callable[[aiosqlite.Connection], Awaitable[Any]]
MAX_BATCH = 256
BUSY_TIMEOUT_MS = 5_000
LOCKED_RETRY_SECONDS = 30.0


class StoreError(RuntimeError):
    """The store could not do what was asked; the message says what to do."""


@dataclass
class _Pending:
    job: Job
    future: asyncio.Future[Any] | None
    ingest: Summarized | None = None  # set for messages, so a run of them is one batch


def _migrations() -> list[tuple[int, str]]:
    from importlib import resources  # importlib.resources loads zipfile: not for reads

    folder = resources.files("sandbox.store") / "migrations"
    found = []
    for item in folder.iterdir():
        if item.name.endswith(".sql"):
            number = int(item.name.split("_", 1)[0])
            found.append((number, item.read_text(encoding="utf-8")))
    return sorted(found)


def _latest_migration() -> int:
    """The schema version this code expects (file names only: nothing is read)."""
    names = os.listdir(Path(__file__).with_name("migrations"))
    return max(int(name.split("_", 1)[0]) for name in names if name.endswith(".sql"))


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
    """Apply numbered migrations in order; safe when two processes open the file at once.

    Another process may hold the write lock longer than ``busy_timeout``: wait for it
    (within ``LOCKED_RETRY_SECONDS``) rather than fail to open.
    """
    deadline = time.monotonic() + LOCKED_RETRY_SECONDS
    while True:
        try:
            await conn.execute("BEGIN IMMEDIATE")
            break
        except sqlite3.OperationalError as exc:
            if not _locked(exc) or time.monotonic() >= deadline:
                raise
            await asyncio.sleep(0.05)
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
        self,
        path: str,
        writer: aiosqlite.Connection,
        reader: aiosqlite.Connection,
        bus: EventBus | None = None,
    ) -> None:
        self.path = path
        self.bus = bus if bus is not None else EventBus()
        # Names this store's rows in the change feed, so its own feed skips them.
        self.origin = secrets.token_hex(8)
        self._writer_conn = writer
        self._reader = reader
        self._feed: ChangeFeed | None = None
        self._feed_conn: aiosqlite.Connection | None = None
        self._changes_written = 0
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._writer_task: asyncio.Task[None] | None = None
        self._closed = False
        self._journal_rows: list[tuple[float, str, str]] = []
        self._journal_flush_queued = False
        self._read_only = False  # opened by open_for_reading: no writer

    @classmethod
    async def open(
        cls,
        path: str,
        *,
        bus: EventBus | None = None,
        follow: bool = True,
        feed_interval: float | None = None,
    ) -> SqliteStore:
        """Open (creating and migrating) the data file.

        ``bus``: where changes are announced (a new one if not given). ``follow``: also
        publish other processes' changes there (the change feed); a short-lived command
        that only writes may pass False.
        """
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
        store = cls(path, writer, reader, bus)
        store._writer_task = asyncio.get_running_loop().create_task(store._write_loop())
        if follow and path != MEMORY:
            try:
                store._feed_conn = await _connect(path, read_only=True)
                kwargs = {} if feed_interval is None else {"interval": feed_interval}
                store._feed = ChangeFeed(store._feed_conn, store.bus, store.origin, **kwargs)
                await store._feed.start()
            except (OSError, aiosqlite.Error) as exc:
                await store.close()
                raise StoreError(f"cannot follow the data file {path}: {exc}") from None
        return store

    @classmethod
    async def open_for_reading(cls, path: str) -> SqliteStore:
        """A quick open for a command that only reads: one query-only connection, no write
        lock, no migration. A file whose schema is not current (new, or older than this
        code) gets the normal ``open`` instead, which migrates it. Writes are refused."""
        if path != MEMORY:
            conn: aiosqlite.Connection | None = None
            try:
                conn = await aiosqlite.connect(path, isolation_level=None)
                await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                await conn.execute("PRAGMA query_only = ON")
                rows = await conn.execute_fetchall("PRAGMA user_version")
                if int(next(iter(rows))[0]) == _latest_migration():
                    store = cls(path, conn, conn)
                    store._read_only = True
                    return store
            except (OSError, aiosqlite.Error):
                pass  # the normal open says what is wrong
            if conn is not None:
                await conn.close()
        return await cls.open(path, follow=False)

    async def trace(self, callback: Callable[[str], object] | None) -> None:
        """Call ``callback`` with every statement (parameters expanded) that any of the
        store's connections runs; None stops. For the query-plan test and profiling."""
        conns = {id(c): c for c in (self._writer_conn, self._reader, self._feed_conn) if c}
        for conn in conns.values():
            # sqlite3 takes None to stop tracing; aiosqlite's hint forgot it.
            await conn.set_trace_callback(cast(Callable[..., Any], callback))

    async def poll_changes(self) -> int:
        """Publish other processes' changes now, without waiting for the feed's timer."""
        return await self._feed.poll() if self._feed is not None else 0

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._feed is not None:
            await self._feed.stop()
        if self._feed_conn is not None:
            await self._feed_conn.close()
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
        if self._read_only:
            raise StoreError("this store was opened for reading only; open it with open()")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(job, future))
        return await future

    async def commit(
        self, job: Callable[[aiosqlite.Connection], Awaitable[tuple[T, Sequence[Event]]]]
    ) -> T:
        """Run a job that returns (result, events); commit; then announce the events.

        The one way a change is made: its feed rows are in its own transaction, and its
        events reach this process's listeners only after the commit.
        """

        async def recorded(conn: aiosqlite.Connection) -> tuple[T, tuple[Event, ...]]:
            result, events = await job(conn)
            await self._record(conn, events)
            return result, tuple(events)

        result, events = await self.write(recorded)
        self.announce(events)
        return result

    def announce(self, events: Iterable[Event]) -> None:
        for event in events:
            self.bus.publish(event)

    async def _record(self, conn: aiosqlite.Connection, events: Sequence[Event]) -> None:
        written = await changes.record(conn, self.origin, events)
        self._changes_written += written
        if self._changes_written >= changes.TRIM_EVERY:
            self._changes_written = 0
            await changes.trim(conn)

    def write_later(self, job: Job) -> None:
        """Queue a write nobody waits for (the journal); failures are logged."""
        if not self._closed and not self._read_only:
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
        deadline = time.monotonic() + LOCKED_RETRY_SECONDS
        while True:
            results: list[Any] = []
            try:
                await conn.execute("BEGIN IMMEDIATE")
                for run in _runs(batch):
                    if run[0].ingest is not None:
                        results += await self._ingest_run(conn, [p.ingest for p in run if p.ingest])
                    else:
                        results += [await pending.job(conn) for pending in run]
                await conn.execute("COMMIT")
                break
            except Exception as exc:
                with contextlib.suppress(Exception):
                    await conn.execute("ROLLBACK")
                if _locked(exc) and time.monotonic() < deadline:
                    # Another process holds the file past busy_timeout: wait, try again.
                    await asyncio.sleep(0.05)
                    continue
                if _locked(exc):
                    exc = StoreError(
                        f"the data file {self.path} stayed locked by another process for"
                        f" {LOCKED_RETRY_SECONDS:.0f} s; stop whatever holds it and try again"
                    )
                await self._fail_batch(batch, exc)
                return
        for pending, result in zip(batch, results, strict=True):
            _settle(pending, result, None)

    async def _fail_batch(self, batch: list[_Pending], exc: Exception) -> None:
        if len(batch) > 1 and not isinstance(exc, StoreError):
            for pending in batch:  # find the bad job; the others still commit
                await self._commit_batch([pending])
            return
        for pending in batch:
            _settle(pending, None, exc)

    # --- messages -------------------------------------------------------------------

    async def ingest(self, message: NewMessage) -> StoredMessage:
        """Store a message once and a copy per mailbox folder; returns once committed."""
        if self._closed:
            raise StoreError("the store is closed")
        future: asyncio.Future[tuple[StoredMessage, tuple[Event, ...]]] = (
            asyncio.get_running_loop().create_future()
        )
        item = summarized(message)  # parsed here, outside the write transaction
        self._queue.put_nowait(_Pending(self._ingest_job(item), future, item))
        stored, events = await future
        self.announce(events)
        return stored

    def _ingest_job(self, message: Summarized) -> Job:
        async def job(conn: aiosqlite.Connection) -> tuple[StoredMessage, tuple[Event, ...]]:
            return (await self._ingest_run(conn, [message]))[0]

        return job

    async def _ingest_run(
        self, conn: aiosqlite.Connection, items: list[Summarized]
    ) -> list[tuple[StoredMessage, tuple[Event, ...]]]:
        """Insert a run of messages and their feed rows; each with the events it causes."""
        out = []
        every: list[Event] = []
        for (message, _), stored in zip(items, await ingest_many(conn, items), strict=True):
            events = ingest_events(message, stored)
            every += events
            out.append((stored, events))
        await self._record(conn, every)
        return out

    async def add_hops(self, message_id: int, hops: Iterable[Hop]) -> None:
        hops = tuple(hops)

        async def job(conn: aiosqlite.Connection) -> None:
            await insert_hops(conn, message_id, hops)

        await self.write(job)

    async def read(self, job: Callable[[aiosqlite.Connection], Awaitable[T]]) -> T:
        """Run a reader from one of the store's modules on the read connection."""
        return await job(self._reader)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a read query on the reader connection (for modules that own their own SQL)."""
        return [tuple(row) for row in await self._reader.execute_fetchall(sql, params)]

    async def list_messages(
        self, flt: MessageFilter = ALL, *, limit: int | None = None
    ) -> list[MessageRecord]:
        return await views.list_messages(self._reader, flt, limit=limit)

    async def newest_message(self, flt: MessageFilter = ALL) -> MessageRecord | None:
        return await views.newest_message(self._reader, flt)

    async def last_id(self) -> int:
        """The highest message copy id ever given (ids are never reused)."""
        return await views.last_id(self._reader)

    async def get_message(self, entry_id: int) -> MessageRecord | None:
        return await views.get_message(self._reader, entry_id)

    async def raw(self, message_id: int) -> bytes | None:
        return await views.raw(self._reader, message_id)

    async def journey(self, message_id: int, domain: str | None = None) -> tuple[Hop, ...]:
        """The hops of a message and of the messages it was relayed from, in time order.

        With ``domain``, an ancestor's hops about other domains' deliveries are left out:
        the copy in larry@beta.test does not need gamma.test's retries.
        """
        return await views.journey(self._reader, message_id, domain)

    async def journey_of(self, record: MessageRecord) -> tuple[Hop, ...]:
        """The journey as this copy's mailbox saw it."""
        return await self.journey(record.message_id, domain_of(record.mailbox))

    # --- the relay queue ------------------------------------------------------------

    async def due_deliveries(
        self, now: float, limit: int, exclude: Iterable[int] = ()
    ) -> list[Delivery]:
        return await deliveries.due_deliveries(self._reader, now, limit, exclude)

    async def next_attempt_at(self, exclude: Iterable[int] = ()) -> float | None:
        return await deliveries.next_attempt_at(self._reader, exclude)

    async def pending_deliveries(self) -> list[Delivery]:
        return await deliveries.pending_deliveries(self._reader)

    async def deliveries_of(self, message_id: int) -> list[Delivery]:
        return await deliveries.deliveries_of(self._reader, message_id)

    async def finish_attempt(
        self,
        delivery: Delivery,
        *,
        state: str,
        recipients: tuple[str, ...],
        next_attempt_at: float,
        last_reply: str | None,
        hops: Iterable[Hop],
        reports: Sequence[NewMessage] = (),
    ) -> str:
        """Record one attempt's outcome and its hops in one transaction; returns the state.

        Recipients an MX server of this sandbox already marked delivered (in its own
        commit, see ``NewMessage.delivered_for``) never come back into the queue, even if
        the relay did not hear that 250: the state says what is really left. ``reports``,
        the RFC 3464 reports owed to the sender, are stored in the same commit.
        """
        return await self.commit(
            deliveries.finish_attempt(
                delivery,
                state=state,
                recipients=recipients,
                next_attempt_at=next_attempt_at,
                last_reply=last_reply,
                hops=hops,
                reports=reports,
            )
        )

    async def retry_now(self) -> int:
        """Make every delivery not yet done due at once; returns how many."""
        return await self.write(deliveries.retry_now())

    # --- chaos settings shared with other processes ---------------------------------

    async def set_chaos(self, domain: str, settings: dict[str, Any] | None) -> None:
        return await self.write(chaos.set_chaos(domain, settings))

    async def chaos(self) -> dict[str, dict[str, Any]]:
        return await chaos.chaos(self._reader)

    async def count_messages(self) -> int:
        return await views.count_messages(self._reader)

    async def prune(self, *, max_messages: int, max_age: float, grace: float) -> int:
        """Delete the oldest messages beyond ``max_messages`` or older than ``max_age``
        seconds (0: no limit). Never one received in the last ``grace`` seconds, nor one
        the relay still has to deliver. Returns how many messages went."""
        return await self.commit(
            retention.prune(max_messages=max_messages, max_age=max_age, grace=grace)
        )

    async def clear(self, *, with_queue: bool = False) -> int:
        """Delete every message copy; mailboxes and folders stay, so UIDs keep ascending.

        A message the relay still has to deliver stays (without copies) until it is
        delivered, unless ``with_queue`` drops those deliveries first. Returns how many
        copies went.
        """
        return await self.commit(messages.clear(with_queue=with_queue))

    async def trim_journal(self, keep: int) -> int:
        """Keep the newest ``keep`` rows of the events journal; returns how many went."""
        return await self.write(journal.trim_journal(keep))

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
            await journal.insert(conn, taken)

        return job

    async def events(
        self, *, kind: str | None = None, after_id: int = 0, limit: int = 1000
    ) -> list[tuple[int, float, str, dict[str, Any]]]:
        return await journal.events(self._reader, kind=kind, after_id=after_id, limit=limit)

    # --- single copies, as the TUI changes them ---------------------------------------

    async def delete_entries(
        self, entry_ids: Sequence[int], origin: str = "tui"
    ) -> list[tuple[int, int, str, str]]:
        """Delete these copies (``delete_copies``'s rule) and announce ``EntriesExpunged``.

        Returns (entry id, uid, mailbox, folder) of the copies deleted."""
        return await self.commit(messages.delete_entries(entry_ids, origin))

    async def set_seen(
        self, entry_ids: Sequence[int], seen: bool, origin: str = "tui"
    ) -> list[tuple[int, int, str, str, tuple[str, ...]]]:
        """Add or remove ``\\Seen`` (RFC 3501 §2.3.2) on these copies and announce
        ``FlagsChanged``; returns the copies that changed as (entry id, uid, mailbox,
        folder, new flags)."""
        return await self.commit(messages.set_seen(entry_ids, seen, origin))


def _runs(batch: list[_Pending]) -> list[list[_Pending]]:
    """Split a batch into runs of messages and runs of other jobs, keeping their order."""
    runs: list[list[_Pending]] = []
    for pending in batch:
        if runs and (runs[-1][0].ingest is None) == (pending.ingest is None):
            runs[-1].append(pending)
        else:
            runs.append([pending])
    return runs


def _locked(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and (
        "locked" in str(exc) or "busy" in str(exc)
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
