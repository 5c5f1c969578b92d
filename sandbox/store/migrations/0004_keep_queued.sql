-- A message stays while the relay still has to deliver it, whatever removes its last copy
-- (IMAP EXPUNGE or folder DELETE, POP3, the TUI, clear, retention): one rule for all of
-- them. Without it deliveries.message_id cascades and the queued delivery is lost.
-- RAISE(IGNORE) skips just that row; the rest of a multi-row DELETE goes ahead.
CREATE TRIGGER messages_keep_queued BEFORE DELETE ON messages
WHEN EXISTS (SELECT 1 FROM deliveries WHERE message_id = OLD.id
             AND state IN ('queued', 'deferred'))
BEGIN
    SELECT RAISE(IGNORE);
END;

-- The MX server of a sandbox domain finds the delivery a relayed message belongs to.
CREATE INDEX deliveries_by_message_domain ON deliveries (message_id, domain);
