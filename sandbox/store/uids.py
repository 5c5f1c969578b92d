"""Folders' UIDVALIDITY and UIDs: one rule for every path that makes a folder."""

# RFC 3501 §2.3.1.1: a new folder never reuses a UIDVALIDITY, even for a name used before:
# the unix time, bumped past any value already given — deleted folders' too, kept by
# 0060's uidvalidity_floor (0001's trigger does the same for the default folders).
# UIDs come from folders.uidnext; 0001's entries_advance_uidnext trigger moves it on
# as copies go in.
NEW_UIDVALIDITY = (
    "max(CAST(strftime('%s', 'now') AS INTEGER),"
    " (SELECT coalesce(max(uidvalidity), 0) + 1 FROM folders),"
    " (SELECT value + 1 FROM uidvalidity_floor))"
)
