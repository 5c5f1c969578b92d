-- Mailpit-style searches (subject:, from:, to:, cc:) over 100,000 messages: a trigram
-- full-text index answers LIKE '%text%' without reading every message. Kept in step with
-- messages by triggers, so every writer (any process, any version of the code) feeds it.
CREATE VIRTUAL TABLE message_search USING fts5 (
    subject, sender, recipients, cc, tokenize = 'trigram'
);

INSERT INTO message_search (rowid, subject, sender, recipients, cc)
SELECT id, coalesce(subject, ''), coalesce(header_from, '') || ' ' || envelope_from,
       header_to || ' ' || envelope_to, header_cc
FROM messages;

CREATE TRIGGER message_search_insert AFTER INSERT ON messages
BEGIN
    INSERT INTO message_search (rowid, subject, sender, recipients, cc) VALUES (
        NEW.id, coalesce(NEW.subject, ''),
        coalesce(NEW.header_from, '') || ' ' || NEW.envelope_from,
        NEW.header_to || ' ' || NEW.envelope_to, NEW.header_cc);
END;

CREATE TRIGGER message_search_delete AFTER DELETE ON messages
BEGIN
    DELETE FROM message_search WHERE rowid = OLD.id;
END;
