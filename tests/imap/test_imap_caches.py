"""The backend's caches (issue 6) never show a client stale data."""

from __future__ import annotations

from tests.imap.conftest import ImapSandbox

LARRY = "larry@beta.test"


def test_select_snapshot_is_rebuilt_after_any_change(imap: ImapSandbox) -> None:
    imap.deliver(LARRY, "a")
    client = imap.client(LARRY)
    assert client.select("INBOX") == ("OK", [b"1"])
    client.store("1", "+FLAGS", "(\\Seen $Work)")
    client.unselect()
    imap.deliver(LARRY, "b")
    again = imap.client(LARRY)
    assert again.select("INBOX") == ("OK", [b"2"])
    assert again.untagged_responses["UNSEEN"] == [b"2"]
    assert b"$Work" in again.untagged_responses["FLAGS"][0]
    assert b"$Work" in again.fetch("1", "FLAGS")[1][0]
    # A cached snapshot (nothing changed) answers the same way.
    third = imap.client(LARRY)
    assert third.select("INBOX") == ("OK", [b"2"])
    assert third.untagged_responses["UNSEEN"] == [b"2"]


def test_one_message_per_uid_fetch_reads_ahead_correctly(imap: ImapSandbox) -> None:
    for i in range(10):
        imap.deliver(LARRY, f"s{i}", body=f"body {i}\r\n")
    client = imap.client(LARRY)
    client.select("INBOX", readonly=True)
    for uid in (1, 2, 3, 4, 7, 8, 9, 10, 5):  # sequential runs, a jump, then back
        typ, data = client.uid("FETCH", str(uid), "(BODY.PEEK[])")
        assert typ == "OK"
        assert f"Subject: s{uid - 1}\r\n".encode() in data[0][1]
        assert data[0][1].endswith(f"body {uid - 1}\r\n".encode())
