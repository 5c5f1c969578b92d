"""The webmail's IMAP reading and writing, with bytes alone (as aioimaplib hands them over)."""

from __future__ import annotations

import pytest

from sandbox.webmail import imapwire as W


def test_list_lines_with_quoted_utf7_and_literal_names():
    lines = [
        b'(\\HasNoChildren) "/" INBOX',
        b'(\\HasNoChildren \\Sent) "/" "Sent"',
        b'(\\HasNoChildren) "/" "My \\"Work\\" folder"',
        b'(\\HasNoChildren) "/" "Entw&APw-rfe"',
        b'(\\Noselect \\HasChildren) "/" {8}',
        bytearray(b"Projects"),
        b"",
    ]
    found = W.parse_list(lines)
    assert [f.name for f in found] == ["INBOX", "Sent", 'My "Work" folder', "Entwürfe", "Projects"]
    assert found[1].special_use == "\\Sent"
    assert not found[4].selectable


def test_fetch_with_two_literals_and_flags_after_them():
    lines = [
        b"12 FETCH (UID 40 RFC822.SIZE 77 BODY[HEADER.FIELDS (FROM SUBJECT)] {20}",
        bytearray(b"Subject: (hi) {3}\r\n\r\n"),
        b" BODY[] {5}",
        bytearray(b"a)b(c"),
        b' FLAGS (\\Seen $Label) INTERNALDATE "01-Dec-2026 19:57:51 +0000")',
        b"3 EXISTS",
    ]
    [item] = W.parse_fetch(lines)
    assert (item.seq, item.uid, item.size) == (12, 40, 77)
    assert item.flags == ("\\Seen", "$Label")
    assert item.sections["BODY[HEADER.FIELDS (FROM SUBJECT)]"] == b"Subject: (hi) {3}\r\n\r\n"
    assert item.sections["BODY[]"] == b"a)b(c"
    assert W.internaldate_iso(item.internaldate) == "2026-12-01T19:57:51+00:00"


def test_status_search_and_unsolicited_changes():
    assert W.parse_status([b'"INBOX" (MESSAGES 3 UNSEEN 1)']) == {"MESSAGES": 3, "UNSEEN": 1}
    assert W.parse_status([b'STATUS "a b" (MESSAGES 0)']) == {"MESSAGES": 0}
    assert W.parse_search([b"1 4 9"]) == [1, 4, 9]
    assert W.parse_search([b"SEARCH"]) == []
    changes = W.changes(
        [b"5 EXISTS", b"2 EXPUNGE", b"1 FETCH (FLAGS (\\Seen) UID 7)"], flags_too=True
    )
    assert (changes.exists, changes.expunged, changes.flags) == (5, (2,), (7,))
    assert W.changes([b"1 FETCH (FLAGS ())"], flags_too=False).any is False


def test_arguments_are_quoted_and_line_breaks_refused():
    assert W.quote('a "b" \\c') == '"a \\"b\\" \\\\c"'
    assert W.mailbox_arg("Entwürfe") == '"Entw&APw-rfe"'
    assert W.uid_set([3, 1, 2, 3]) == "1,2,3"
    with pytest.raises(ValueError, match="line breaks"):
        W.quote("a\r\nb")
    with pytest.raises(ValueError, match="ASCII"):
        W.search_text_arg("café")
    with pytest.raises(ValueError, match="no messages"):
        W.uid_set([])
    with pytest.raises(W.WireError):
        W.tokens([b"(unbalanced"])
