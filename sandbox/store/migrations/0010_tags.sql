-- Mailpit-style tags on message copies (the HTTP API's messages are copies: entries).
-- Set through the API, from an X-Tags header and from plus-addresses on arrival.
CREATE TABLE entry_tags (
    entry_id  INTEGER NOT NULL REFERENCES entries (id) ON DELETE CASCADE,
    tag       TEXT    NOT NULL,
    PRIMARY KEY (entry_id, tag)
) WITHOUT ROWID;
CREATE INDEX entry_tags_by_tag ON entry_tags (tag);
