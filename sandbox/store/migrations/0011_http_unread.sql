-- The HTTP API answers every list with the store's unread count; this partial index
-- holds only copies without \Seen, so counting them reads a narrow index, not the table.
CREATE INDEX entries_unseen ON entries (id) WHERE instr(' ' || flags || ' ', ' \Seen ') = 0;
