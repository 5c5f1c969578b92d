-- RFC 3501 §2.3.1.1: a folder deleted and created again under its name must get a new
-- UIDVALIDITY. max(uidvalidity) over the folders forgets a deleted folder's value, so
-- the highest value ever given is kept here as the floor for the next one.
CREATE TABLE uidvalidity_floor (value INTEGER NOT NULL);
INSERT INTO uidvalidity_floor (value) SELECT coalesce(max(uidvalidity), 0) FROM folders;
CREATE TRIGGER folders_keep_uidvalidity_floor AFTER DELETE ON folders
BEGIN
    UPDATE uidvalidity_floor SET value = max(value, OLD.uidvalidity);
END;
