"""Read views for the HTTP API: pages of message copies, newest first, filtered by
Mailpit's search terms, and the counts its list answers carry.

Every function is one bounded statement on the reader connection. A Mailpit message is
one copy (``entries.id``), so ``ID`` in the API is the id ``mail-sandbox messages`` shows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sandbox.store.sqlite import SqliteStore

# The fields a search term can name (Mailpit's search filters). ``text`` is a bare word
# or phrase: it matches sender, recipients, subject and the raw source.
FIELDS = (
    "text",
    "to",
    "from",
    "cc",
    "bcc",
    "subject",
    "message-id",
    "tag",
    "is",
    "has",
    "after",
    "before",
    "larger",
    "smaller",
)


@dataclass(frozen=True)
class Term:
    """One search term; ``value`` is text, a unix time (after/before) or bytes (sizes)."""

    field: str
    value: str | float | int
    negated: bool = False


@dataclass(frozen=True)
class SearchFilter:
    """Terms that must all hold (Mailpit ANDs them)."""

    terms: tuple[Term, ...] = ()


@dataclass(frozen=True)
class SummaryRow:
    """What a Mailpit message summary needs from the store (headers parsed by the caller)."""

    id: int
    message_id: int
    mailbox: str
    folder: str
    flags: tuple[str, ...]
    held: bool
    envelope_from: str
    envelope_to: tuple[str, ...]
    size: int
    received_at: float
    subject: str | None
    header_message_id: str | None
    tags: tuple[str, ...]

    @property
    def read(self) -> bool:
        return any(f.lower() == "\\seen" for f in self.flags)


_ENTRY_JOINS = (
    " FROM entries e JOIN folders f ON f.id = e.folder_id"
    " JOIN mailboxes mb ON mb.id = f.mailbox_id JOIN messages m ON m.id = e.message_id"
)
_MESSAGE_FIRST_JOINS = (
    " FROM messages m CROSS JOIN entries e ON e.message_id = m.id"
    " JOIN folders f ON f.id = e.folder_id JOIN mailboxes mb ON mb.id = f.mailbox_id"
)
_SUMMARY_SELECT = (
    "SELECT e.id, e.message_id, mb.address, f.name, e.flags, e.held, m.envelope_from,"
    " m.envelope_to, m.size, m.received_at, m.subject, m.message_id,"
    " (SELECT group_concat(t.tag, char(31)) FROM entry_tags t WHERE t.entry_id = e.id)"
    + _ENTRY_JOINS
)
_UNSEEN = "instr(' ' || e.flags || ' ', ' \\Seen ') = 0"


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _indexed(column: str, text: str) -> tuple[str, list[Any]]:
    """A LIKE answered by the trigram index of migration 0012 (``message_search``).

    SQLite's trigram index serves LIKE only without an ESCAPE clause, so text with a
    wildcard character in it (rare in a search) takes the slower, escaped scan.
    ``{drive}`` becomes ``+`` when the matches are many: the query then walks copies
    newest first and stops at the page's end, instead of sorting every match.
    """
    if any(c in text for c in "%_"):
        pattern, escape = _like(text), " ESCAPE '\\'"
    else:
        pattern, escape = f"%{text}%", ""
    sql = (
        f"{{drive}}e.message_id IN (SELECT rowid FROM message_search WHERE {column} LIKE ?{escape})"
    )
    return sql, [pattern]


_INDEXED = {"to": "recipients", "from": "sender", "cc": "cc", "subject": "subject"}
FEW = 500  # matches of an indexed term below which the index drives the query


async def _index_drives(store: SqliteStore, flt: SearchFilter | None) -> bool:
    """True when some indexed term matches few messages (a probe bounded by ``FEW``)."""
    if flt is None:
        return False
    for term in flt.terms:
        if term.field in _INDEXED and not term.negated:
            sql, params = _indexed(_INDEXED[term.field], str(term.value).lower())
            probe = sql.replace("{drive}e.message_id IN", "").strip()[1:-1]
            rows = await store.fetchall(f"SELECT count(*) FROM ({probe} LIMIT {FEW})", params)
            if int(rows[0][0]) < FEW:
                return True
    return False


def _term_sql(term: Term) -> tuple[str, list[Any]]:
    value = term.value
    text = str(value).lower()
    like = _like(text)
    match term.field:
        case "to":  # To headers and envelope recipients (Bcc and held copies too)
            return _indexed("recipients", text)
        case "from":
            return _indexed("sender", text)
        case "cc":
            return _indexed("cc", text)
        case "bcc":
            # Bcc recipients are the envelope's that no To or Cc header names.
            return (
                "EXISTS (SELECT 1 FROM json_each(m.envelope_to) r WHERE lower(r.value)"
                " LIKE ? ESCAPE '\\' AND instr(lower(m.header_to || m.header_cc),"
                " lower(r.value)) = 0)",
                [like],
            )
        case "subject":
            return _indexed("subject", text)
        case "message-id":
            return "lower(trim(coalesce(m.message_id, ''), '<>')) = ?", [text.strip("<>")]
        case "tag":
            return (
                "EXISTS (SELECT 1 FROM entry_tags t WHERE t.entry_id = e.id AND lower(t.tag) = ?)",
                [text],
            )
        case "is":
            if text == "read":
                return f"NOT {_UNSEEN}", []
            if text == "unread":
                return _UNSEEN, []
            if text == "tagged":
                return "EXISTS (SELECT 1 FROM entry_tags t WHERE t.entry_id = e.id)", []
            raise ValueError(f"unknown is: filter {value!r}")
        case "has":
            # Matched in the raw source: a MIME part marked as an attachment.
            return (
                "instr(lower(CAST(m.raw AS TEXT)), 'content-disposition: attachment') > 0",
                [],
            )
        case "after":
            return "m.received_at >= ?", [float(value)]
        case "before":
            return "m.received_at < ?", [float(value)]
        case "larger":
            return "m.size >= ?", [int(value)]
        case "smaller":
            return "m.size < ?", [int(value)]
        case "text":
            return (
                "(lower(coalesce(m.header_from, '')) LIKE ? ESCAPE '\\'"
                " OR lower(m.envelope_from) LIKE ? ESCAPE '\\'"
                " OR lower(m.header_to) LIKE ? ESCAPE '\\' OR mb.address LIKE ? ESCAPE '\\'"
                " OR lower(coalesce(m.subject, '')) LIKE ? ESCAPE '\\'"
                " OR lower(CAST(m.raw AS TEXT)) LIKE ? ESCAPE '\\')",
                [like] * 6,
            )
    raise ValueError(f"unknown search field {term.field!r}")


def where_sql(flt: SearchFilter | None, *, index_drives: bool = True) -> tuple[str, list[Any]]:
    """The WHERE clause of a filter (empty when there is none)."""
    if flt is None or not flt.terms:
        return "", []
    clauses: list[str] = []
    params: list[Any] = []
    for term in flt.terms:
        sql, values = _term_sql(term)
        clauses.append(f"NOT {sql}" if term.negated else sql)
        params += values
    drive = "" if index_drives else "+"
    return " WHERE " + " AND ".join(clauses).replace("{drive}", drive), params


def _summary(row: tuple[Any, ...]) -> SummaryRow:
    return SummaryRow(
        id=int(row[0]),
        message_id=int(row[1]),
        mailbox=str(row[2]),
        folder=str(row[3]),
        flags=tuple(str(row[4]).split()),
        held=bool(row[5]),
        envelope_from=str(row[6]),
        envelope_to=tuple(json.loads(row[7])),
        size=int(row[8]),
        received_at=float(row[9]),
        subject=row[10],
        header_message_id=row[11],
        tags=tuple(sorted(str(row[12]).split("\x1f"), key=str.lower)) if row[12] else (),
    )


async def page(
    store: SqliteStore, flt: SearchFilter | None, *, start: int, limit: int
) -> list[SummaryRow]:
    """One page of copies, newest first."""
    where, params = where_sql(flt, index_drives=await _index_drives(store, flt))
    select = _SUMMARY_SELECT
    if _selective(flt):
        # A term on the message itself matches few rows: scan messages (one row per raw
        # message) and sort the matches, rather than walk every copy newest first.
        select = select.replace(_ENTRY_JOINS, _MESSAGE_FIRST_JOINS)
    rows = await store.fetchall(
        select + where + " ORDER BY e.id DESC LIMIT ? OFFSET ?",
        [*params, limit, start],
    )
    return [_summary(r) for r in rows]


# Terms answered by scanning messages rather than the trigram index: few rows match them.
_SELECTIVE = {"message-id", "text", "larger", "smaller", "after", "before"}


def _selective(flt: SearchFilter | None) -> bool:
    return flt is not None and any(t.field in _SELECTIVE and not t.negated for t in flt.terms)


async def count_matching(store: SqliteStore, flt: SearchFilter | None) -> int:
    where, params = where_sql(flt)
    if not where:
        rows = await store.fetchall("SELECT count(*) FROM entries")
    else:
        rows = await store.fetchall(
            "SELECT count(*) FROM entries e JOIN folders f ON f.id = e.folder_id"
            " JOIN mailboxes mb ON mb.id = f.mailbox_id JOIN messages m ON m.id = e.message_id"
            + where,
            params,
        )
    return int(rows[0][0])


async def matching_ids(store: SqliteStore, flt: SearchFilter | None) -> list[int]:
    """Every copy a filter matches (for delete-by-search and mark-by-search)."""
    where, params = where_sql(flt)
    rows = await store.fetchall(
        "SELECT e.id FROM entries e JOIN folders f ON f.id = e.folder_id"
        " JOIN mailboxes mb ON mb.id = f.mailbox_id JOIN messages m ON m.id = e.message_id"
        + where
        + " ORDER BY e.id",
        params,
    )
    return [int(r[0]) for r in rows]


async def totals(store: SqliteStore) -> tuple[int, int]:
    """(copies, unread copies) in the whole store (the unread through ``entries_unseen``)."""
    rows = await store.fetchall(
        f"SELECT (SELECT count(*) FROM entries), (SELECT count(*) FROM entries e WHERE {_UNSEEN})"
    )
    return int(rows[0][0]), int(rows[0][1])


async def summary(store: SqliteStore, entry_id: int) -> SummaryRow | None:
    rows = await store.fetchall(_SUMMARY_SELECT + " WHERE e.id = ?", (entry_id,))
    return _summary(rows[0]) if rows else None


async def summaries(store: SqliteStore, entry_ids: Sequence[int]) -> list[SummaryRow]:
    if not entry_ids:
        return []
    marks = ",".join("?" * len(entry_ids))
    rows = await store.fetchall(
        _SUMMARY_SELECT + f" WHERE e.id IN ({marks}) ORDER BY e.id", list(entry_ids)
    )
    return [_summary(r) for r in rows]


async def latest_id(store: SqliteStore, flt: SearchFilter | None = None) -> int | None:
    where, params = where_sql(flt)
    rows = await store.fetchall(
        "SELECT e.id FROM entries e JOIN folders f ON f.id = e.folder_id"
        " JOIN mailboxes mb ON mb.id = f.mailbox_id JOIN messages m ON m.id = e.message_id"
        + where
        + " ORDER BY e.id DESC LIMIT 1",
        params,
    )
    return int(rows[0][0]) if rows else None


async def first_after(store: SqliteStore, flt: SearchFilter | None, after_id: int) -> int | None:
    """The oldest matching copy newer than ``after_id`` (what ``wait`` returns)."""
    where, params = where_sql(flt)
    where = (where + " AND" if where else " WHERE") + " e.id > ?"
    rows = await store.fetchall(
        "SELECT e.id FROM entries e JOIN folders f ON f.id = e.folder_id"
        " JOIN mailboxes mb ON mb.id = f.mailbox_id JOIN messages m ON m.id = e.message_id"
        + where
        + " ORDER BY e.id LIMIT 1",
        [*params, after_id],
    )
    return int(rows[0][0]) if rows else None


async def data_version(store: SqliteStore) -> int:
    """Moves whenever any connection commits (SQLite's ``PRAGMA data_version``), so
    counts can be cached until something changed."""
    rows = await store.fetchall("PRAGMA data_version")
    return int(rows[0][0])


async def raws(store: SqliteStore, message_ids: Sequence[int]) -> dict[int, bytes]:
    if not message_ids:
        return {}
    marks = ",".join("?" * len(message_ids))
    rows = await store.fetchall(
        f"SELECT id, raw FROM messages WHERE id IN ({marks})", list(set(message_ids))
    )
    return {int(r[0]): bytes(r[1]) for r in rows}


async def smtp_sessions(store: SqliteStore, limit: int) -> list[dict[str, Any]]:
    """The newest SMTP sessions from the journal, newest first."""
    rows = await store.fetchall(
        "SELECT id, at, data FROM events WHERE kind = 'smtp.session' ORDER BY id DESC LIMIT ?",
        (limit,),
    )
    return [{"id": int(r[0]), "at": float(r[1]), **json.loads(r[2])} for r in rows]


# Journal kinds of each protocol's session records; SMTP logs an open session as progress.
SESSION_KINDS: dict[str, tuple[str, ...]] = {
    "smtp": ("smtp.session", "smtp.progress"),
    "imap": ("imap.session",),
    "pop3": ("pop3.session",),
}
_SESSION_KEY = (
    "coalesce(json_extract(data, '$.session_id'), json_extract(data, '$.server') || ' ' ||"
    " json_extract(data, '$.peer') || ' ' || json_extract(data, '$.started_at'))"
)


async def sessions(
    store: SqliteStore, protocols: Sequence[str], limit: int
) -> list[tuple[str, dict[str, Any]]]:
    """The newest sessions of these protocols, newest first, each as its latest record
    (kind, record): a session is journaled at open, as it changes and at close."""
    kinds = [kind for protocol in protocols for kind in SESSION_KINDS[protocol]]
    marks = ",".join("?" * len(kinds))
    rows = await store.fetchall(
        "SELECT id, at, kind, data FROM events WHERE id IN (SELECT max(id) FROM events"
        f" WHERE kind IN ({marks}) GROUP BY {_SESSION_KEY}) ORDER BY id DESC LIMIT ?",
        (*kinds, limit),
    )
    return [(str(r[2]), {"id": int(r[0]), "at": float(r[1]), **json.loads(r[3])}) for r in rows]


async def dns_log(store: SqliteStore, limit: int) -> list[dict[str, Any]]:
    """The newest DNS queries from the journal, newest first."""
    rows = await store.fetchall(
        "SELECT id, at, data FROM events WHERE kind = 'dns.query' ORDER BY id DESC LIMIT ?",
        (limit,),
    )
    return [{"id": int(r[0]), "at": float(r[1]), **json.loads(r[2])} for r in rows]


async def folder_counts(store: SqliteStore) -> list[tuple[str, str, str, int, int]]:
    """(domain, mailbox, folder, copies, unread) for every folder, in tree order."""
    rows = await store.fetchall(
        "SELECT mb.domain, mb.address, f.name, count(e.id),"
        f" coalesce(sum(e.id IS NOT NULL AND {_UNSEEN}), 0)"
        " FROM folders f JOIN mailboxes mb ON mb.id = f.mailbox_id"
        " LEFT JOIN entries e ON e.folder_id = f.id"
        " GROUP BY f.id ORDER BY mb.domain, mb.address, f.id"
    )
    return [(str(r[0]), str(r[1]), str(r[2]), int(r[3]), int(r[4])) for r in rows]


async def entries_of_queue_id(store: SqliteStore, queue_id: str) -> list[int]:
    """The copies of the message a server accepted with this queue id (``250 … queued as``)
    and of the messages relayed from it."""
    rows = await store.fetchall(
        "SELECT e.id FROM entries e JOIN messages m ON m.id = e.message_id"
        " WHERE m.queue_id = ? OR m.parent_id IN (SELECT id FROM messages WHERE queue_id = ?)"
        " ORDER BY e.id",
        (queue_id, queue_id),
    )
    return [int(r[0]) for r in rows]


async def folder_entries(
    store: SqliteStore, entry_ids: Sequence[int]
) -> list[tuple[int, int, str, str]]:
    """(entry id, uid, mailbox, folder) of these copies, for the events a change announces."""
    if not entry_ids:
        return []
    marks = ",".join("?" * len(entry_ids))
    rows = await store.fetchall(
        "SELECT e.id, e.uid, mb.address, f.name FROM entries e"
        " JOIN folders f ON f.id = e.folder_id JOIN mailboxes mb ON mb.id = f.mailbox_id"
        f" WHERE e.id IN ({marks})",
        list(entry_ids),
    )
    return [(int(r[0]), int(r[1]), str(r[2]), str(r[3])) for r in rows]


async def all_entry_ids(store: SqliteStore) -> list[int]:
    rows = await store.fetchall("SELECT id FROM entries ORDER BY id")
    return [int(r[0]) for r in rows]


async def arrivals_since(store: SqliteStore, since: float) -> tuple[int, int]:
    """(messages, bytes) stored since a unix time (Mailpit's SMTPAccepted figures)."""
    rows = await store.fetchall(
        "SELECT count(*), coalesce(sum(size), 0) FROM messages WHERE received_at >= ?",
        (since,),
    )
    return int(rows[0][0]), int(rows[0][1])
