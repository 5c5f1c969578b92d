-- Messages are stored once; each copy in a mailbox folder is an "entry" with its IMAP UID.

-- AUTOINCREMENT: ids never come back after a clear, so "everything after id N" stays true.
CREATE TABLE messages (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    raw            BLOB    NOT NULL,
    size           INTEGER NOT NULL,
    envelope_from  TEXT    NOT NULL,
    envelope_to    TEXT    NOT NULL,          -- JSON list
    header_from    TEXT,
    header_to      TEXT    NOT NULL,          -- JSON list of addresses
    header_cc      TEXT    NOT NULL,          -- JSON list of addresses
    subject        TEXT,
    date           TEXT,
    message_id     TEXT,
    received_at    REAL    NOT NULL,
    source         TEXT    NOT NULL           -- which server or tool brought it in
);
CREATE INDEX messages_by_time ON messages (received_at);

CREATE TABLE mailboxes (
    id          INTEGER PRIMARY KEY,
    address     TEXT    NOT NULL UNIQUE,      -- lower-cased local@domain
    domain      TEXT    NOT NULL,
    created_at  REAL    NOT NULL
);

CREATE TABLE folders (
    id           INTEGER PRIMARY KEY,
    mailbox_id   INTEGER NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    special_use  TEXT,
    uidvalidity  INTEGER NOT NULL,
    uidnext      INTEGER NOT NULL DEFAULT 1,
    subscribed   INTEGER NOT NULL DEFAULT 1,
    UNIQUE (mailbox_id, name)
);

-- RFC 3501 §2.3.1.1: UIDVALIDITY must change whenever a name is reused for a new
-- folder; the unix time, bumped past any value already used, guarantees that.
CREATE TRIGGER mailbox_default_folders AFTER INSERT ON mailboxes
BEGIN
    INSERT INTO folders (mailbox_id, name, special_use, uidvalidity) VALUES (
        NEW.id, 'INBOX', NULL,
        max(CAST(strftime('%s', 'now') AS INTEGER),
            (SELECT coalesce(max(uidvalidity), 0) + 1 FROM folders)));
    INSERT INTO folders (mailbox_id, name, special_use, uidvalidity) VALUES (
        NEW.id, 'Sent', '\Sent',
        max(CAST(strftime('%s', 'now') AS INTEGER),
            (SELECT coalesce(max(uidvalidity), 0) + 1 FROM folders)));
    INSERT INTO folders (mailbox_id, name, special_use, uidvalidity) VALUES (
        NEW.id, 'Trash', '\Trash',
        max(CAST(strftime('%s', 'now') AS INTEGER),
            (SELECT coalesce(max(uidvalidity), 0) + 1 FROM folders)));
END;

CREATE TABLE entries (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    folder_id   INTEGER NOT NULL REFERENCES folders (id) ON DELETE CASCADE,
    uid         INTEGER NOT NULL,
    message_id  INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    flags       TEXT    NOT NULL DEFAULT '',  -- space-separated IMAP flags
    held        INTEGER NOT NULL DEFAULT 0,   -- recipient outside the sandbox's domains
    added_at    REAL    NOT NULL,
    UNIQUE (folder_id, uid)
);
CREATE INDEX entries_by_time ON entries (added_at);
CREATE INDEX entries_by_message ON entries (message_id);

-- RFC 3501 §2.3.1.1: UIDs strictly ascend within a folder, never reused. Inserts take
-- folders.uidnext as their uid (or the next ones, for a batch); this moves it on.
CREATE TRIGGER entries_advance_uidnext AFTER INSERT ON entries
BEGIN
    UPDATE folders SET uidnext = NEW.uid + 1 WHERE id = NEW.folder_id AND uidnext <= NEW.uid;
END;

-- The journey of a message: every hop with its time and outcome.
CREATE TABLE hops (
    id          INTEGER PRIMARY KEY,
    message_id  INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    at          REAL    NOT NULL,
    step        TEXT    NOT NULL,
    outcome     TEXT    NOT NULL,
    detail      TEXT    NOT NULL             -- JSON object
);
CREATE INDEX hops_by_message ON hops (message_id);

-- The journal of everything that happened (SMTP sessions, DNS queries, relay attempts).
CREATE TABLE events (
    id    INTEGER PRIMARY KEY,
    at    REAL NOT NULL,
    kind  TEXT NOT NULL,
    data  TEXT NOT NULL                       -- JSON object
);
CREATE INDEX events_by_kind ON events (kind, id);
