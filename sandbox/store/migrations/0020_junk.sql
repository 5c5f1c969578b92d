-- DMARC p=quarantine files mail in Junk (RFC 6154 \Junk), for every mailbox: the ones that
-- exist now, and each new one, as 0001 does for INBOX, Sent and Trash.
INSERT INTO folders (mailbox_id, name, special_use, uidvalidity)
    SELECT id, 'Junk', '\Junk',
        max(CAST(strftime('%s', 'now') AS INTEGER),
            (SELECT coalesce(max(uidvalidity), 0) + 1 FROM folders))
    FROM mailboxes WHERE true
    ON CONFLICT (mailbox_id, name) DO UPDATE SET special_use = '\Junk';

CREATE TRIGGER mailbox_junk_folder AFTER INSERT ON mailboxes
BEGIN
    INSERT INTO folders (mailbox_id, name, special_use, uidvalidity) VALUES (
        NEW.id, 'Junk', '\Junk',
        max(CAST(strftime('%s', 'now') AS INTEGER),
            (SELECT coalesce(max(uidvalidity), 0) + 1 FROM folders)))
    ON CONFLICT (mailbox_id, name) DO UPDATE SET special_use = '\Junk';
END;
