-- messages.parent_id references messages: without an index on it, every DELETE of a
-- message (and the foreign-key check of every INSERT) reads the whole messages table
-- to find the rows pointing at it. With a million messages, that is each expunge.
CREATE INDEX messages_by_parent ON messages (parent_id);
