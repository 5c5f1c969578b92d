-- The change feed: every change to mailboxes or the queue, written in the same transaction
-- as the change itself, so a process that sees data_version move reads exactly what was
-- committed, in commit order. origin: the writing store's token (it skips its own rows).
CREATE TABLE changes (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    origin   TEXT    NOT NULL,
    at       REAL    NOT NULL,
    kind     TEXT    NOT NULL,
    payload  TEXT    NOT NULL             -- JSON object: the event's fields
);
