"""The webmail's one read query: which stored copy an IMAP (mailbox, folder, UID) names.

The webmail reads mail over IMAP, as real webmail does; the sandbox's own endpoints
(the journey above all) speak of copies by their per-copy id, the ``id`` of
``mail-sandbox messages --json``. This maps one to the other, and nothing else.
"""

from __future__ import annotations

from sandbox.store.sqlite import SqliteStore


async def copy_id(store: SqliteStore, mailbox: str, folder: str, uid: int) -> int | None:
    """The per-copy id of UID ``uid`` in ``folder`` of ``mailbox``; None when it is gone."""
    rows = await store.fetchall(
        "SELECT e.id FROM entries e JOIN folders f ON f.id = e.folder_id"
        " JOIN mailboxes m ON m.id = f.mailbox_id"
        " WHERE m.address = ? AND f.name = ? AND e.uid = ?",
        (mailbox.lower(), folder, uid),
    )
    return int(rows[0][0]) if rows else None
