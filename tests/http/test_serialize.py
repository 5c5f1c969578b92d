"""One test per JSON shape of Mailpit and MailHog, from bytes alone (no server)."""

from __future__ import annotations

from sandbox.http import serialize
from sandbox.store.http_views import SummaryRow

RAW = (
    b"From: =?utf-8?q?Ann_=C3=85berg?= <ann@alpha.test>\r\nTo: Larry <larry@beta.test>, "
    b"moe@gamma.test\r\nCc: Cy <cy@beta.test>\r\nReply-To: desk@alpha.test\r\n"
    b"Return-Path: <bounce@alpha.test>\r\nList-Unsubscribe: <https://x.test/u>, "
    b"<mailto:u@x.test>\r\nDate: Tue, 01 Dec 2026 10:00:00 +0100\r\nSubject: Hello\r\n"
    b"Message-ID: <m1@alpha.test>\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
    b"Content-Type: multipart/alternative; boundary=a\r\n\r\n--a\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\nHello   there,\r\n  friend\r\n--a\r\n"
    b"Content-Type: text/html\r\n\r\n<p>Hello</p>\r\n--a--\r\n--b\r\n"
    b"Content-Type: image/png\r\nContent-ID: <logo@x>\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\niVBORw0K\r\n--b\r\n"
    b'Content-Type: text/csv\r\nContent-Disposition: attachment; filename="d.csv"\r\n\r\n'
    b"a,b\r\n--b--\r\n"
)
ROW = SummaryRow(
    id=7,
    message_id=3,
    mailbox="larry@beta.test",
    folder="INBOX",
    flags=("\\Seen",),
    held=False,
    envelope_from="bounce@alpha.test",
    envelope_to=("larry@beta.test", "moe@gamma.test", "secret@beta.test"),
    size=len(RAW),
    received_at=1_796_160_000.5,
    subject="Hello",
    header_message_id="<m1@alpha.test>",
    tags=("news",),
)
PARSED = serialize.parse_message(RAW)


def test_message_summary_shape() -> None:
    summary = serialize.message_summary(ROW, PARSED)
    assert list(summary) == [
        "ID", "MessageID", "Read", "From", "To", "Cc", "Bcc", "ReplyTo", "Subject",
        "Created", "Username", "Tags", "Size", "Attachments", "Snippet",
    ]  # fmt: skip
    assert summary["ID"] == "7"
    assert summary["MessageID"] == "m1@alpha.test"
    assert summary["Read"] is True
    assert summary["From"] == {"Name": "Ann Åberg", "Address": "ann@alpha.test"}
    assert summary["To"] == [
        {"Name": "Larry", "Address": "larry@beta.test"},
        {"Name": "", "Address": "moe@gamma.test"},
    ]
    assert summary["Bcc"] == [{"Name": "", "Address": "secret@beta.test"}]
    assert summary["Created"] == "2026-12-01T21:20:00.500+00:00"
    assert summary["Attachments"] == 1
    assert summary["Snippet"] == "Hello there, friend"


def test_message_shape() -> None:
    full = serialize.message(ROW, PARSED)
    assert {
        "ID", "MessageID", "Read", "From", "To", "Cc", "Bcc", "ReplyTo", "ReturnPath",
        "Subject", "ListUnsubscribe", "Date", "Tags", "Username", "Text", "HTML", "Size",
        "Inline", "Attachments", "Auth",  # Auth: the sandbox's own, null when unchecked
    } == set(full)  # fmt: skip
    assert full["Auth"] is None  # no Authentication-Results in this message
    assert full["ReturnPath"] == "bounce@alpha.test"
    assert full["Date"] == "2026-12-01T10:00:00+01:00"
    assert full["Text"] == "Hello   there,\n  friend"
    assert full["HTML"] == "<p>Hello</p>"
    assert full["ListUnsubscribe"]["Links"] == ["https://x.test/u", "mailto:u@x.test"]
    (inline,) = full["Inline"]
    assert inline["ContentID"] == "logo@x" and inline["PartID"] == "2"
    (attached,) = full["Attachments"]
    assert attached["PartID"] == "3"
    assert attached["FileName"] == "d.csv" and attached["Size"] == 3
    assert set(attached["Checksums"]) == {"MD5", "SHA1", "SHA256"}


def test_messages_list_shape() -> None:
    summary = serialize.message_summary(ROW, PARSED)
    page = serialize.messages_list([summary], total=9, unread=2, matching=4, start=3, tags=["a"])
    assert page == {
        "total": 9,
        "unread": 2,
        "count": 1,
        "messages_count": 4,
        "messages_unread": 0,
        "start": 3,
        "tags": ["a"],
        "messages": [summary],
    }


def test_headers_shape() -> None:
    headers = serialize.headers(RAW, "larry@beta.test")
    assert list(headers) == sorted(headers)
    assert headers["Message-Id"] == ["<m1@alpha.test>"]
    assert headers["Delivered-To"] == ["larry@beta.test"]
    assert headers["To"] == ["Larry <larry@beta.test>, moe@gamma.test"]


def test_event_shape() -> None:
    assert serialize.event("delete", {"ID": "1"}) == {"Type": "delete", "Data": {"ID": "1"}}
    assert serialize.event("truncate", None) == {"Type": "truncate", "Data": None}


def test_info_and_webui_shapes() -> None:
    info = serialize.info(
        version="1", database="x", size=1, total=2, unread=1, tags={"a": 1}, uptime=3,
        memory=4, accepted=5, accepted_size=6, rejected=0, deleted=7,
    )  # fmt: skip
    assert set(info) == {
        "Version", "LatestVersion", "Database", "DatabaseSize", "Messages", "Unread", "Tags",
        "RuntimeStats",
    }  # fmt: skip
    assert info["RuntimeStats"]["MessagesDeleted"] == 7
    webui = serialize.webui(label="l", smtp="127.0.0.1:1025")
    assert webui["MessageRelay"]["SMTPServer"] == "127.0.0.1:1025"
    assert {"SpamAssassin", "ChaosEnabled", "DuplicatesIgnored", "Label"} <= set(webui)


def test_mailhog_message_shape() -> None:
    item = serialize.mailhog_message(ROW, RAW)
    assert set(item) == {"ID", "From", "To", "Content", "Created", "MIME", "Raw"}
    assert item["From"] == {
        "Relays": None,
        "Mailbox": "bounce",
        "Domain": "alpha.test",
        "Params": "",
    }
    assert [t["Mailbox"] for t in item["To"]] == ["larry", "moe", "secret"]
    assert item["Content"]["Headers"]["Subject"] == ["Hello"]
    assert item["Content"]["Size"] == len(RAW)
    parts = item["MIME"]["Parts"]
    assert len(parts) == 3
    assert len(parts[0]["MIME"]["Parts"]) == 2  # the alternative's text and HTML
    assert parts[2]["Headers"]["Content-Disposition"] == ['attachment; filename="d.csv"']
    assert parts[2]["Body"].strip() == "a,b"
    assert item["Raw"]["To"] == list(ROW.envelope_to)
    assert serialize.mailhog_list([item], total=5, start=0) == {
        "total": 5,
        "count": 1,
        "start": 0,
        "items": [item],
    }


def test_single_part_message_and_broken_mime() -> None:
    plain = serialize.parse_message(b"Subject: x\r\n\r\njust text\r\n")
    assert plain.text == "just text\n" and plain.parts == ()
    broken = serialize.parse_message(
        b"Content-Type: multipart/mixed; boundary=zz\r\n\r\nno boundary ever\r\n"
    )
    assert broken.sender is None
    assert serialize.find_part(b"Subject: x\r\n\r\nbody", "1") == ("text/plain", "", b"body")
