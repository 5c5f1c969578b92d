-- The relay: a queue of deliveries, and the trace that links a message to the one it was
-- relayed from, so a delivered copy can show its whole journey.

-- The id a server gave the message in its 250 reply and its Received: header.
ALTER TABLE messages ADD COLUMN queue_id TEXT;
-- The message this one continues (the relayed original), found through the trace id.
ALTER TABLE messages ADD COLUMN parent_id INTEGER REFERENCES messages (id) ON DELETE SET NULL;
CREATE INDEX messages_by_queue_id ON messages (queue_id);

-- One delivery per (message, recipient domain): all that domain's recipients in one
-- SMTP transaction. state: queued, deferred, delivered, bounced.
CREATE TABLE deliveries (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id       INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    domain           TEXT    NOT NULL,
    envelope_from    TEXT    NOT NULL,
    recipients       TEXT    NOT NULL,        -- JSON list, the ones still to deliver
    state            TEXT    NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  REAL    NOT NULL,
    last_reply       TEXT,
    created_at       REAL    NOT NULL,
    updated_at       REAL    NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (state, next_attempt_at);
CREATE INDEX deliveries_by_message ON deliveries (message_id);

-- Fault injection switched at run time (mail-sandbox chaos), read by the running servers.
CREATE TABLE chaos (
    domain      TEXT PRIMARY KEY,
    settings    TEXT NOT NULL,               -- JSON object
    updated_at  REAL NOT NULL
);
