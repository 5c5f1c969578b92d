"""Reading headers and bodies leniently, with real-world shaped fixtures."""

from __future__ import annotations

import email.utils

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox.mime import readable_text, summarize
from tests.conftest import DATA


def test_nested_multipart_summary_and_text() -> None:
    raw = (DATA / "nested_multipart.eml").read_bytes()
    summary = summarize(raw)
    assert summary.from_addr == "zoe@alpha.test"
    assert summary.to == ("larry@beta.test",)
    assert summary.cc == ("ops@gamma.test",)
    assert summary.subject == "Report — Q3 📈"
    assert summary.date == "2026-11-03T09:15:00+01:00"
    assert summary.message_id == "<nested-1@alpha.test>"
    assert readable_text(raw).strip() == "Hello Larry, the report is attached. Café at 10?"


def test_unknown_charset_is_read_not_raised() -> None:
    raw = (DATA / "unknown_charset.eml").read_bytes()
    assert summarize(raw).subject == "=?x-made-up-charset?q?caf=E9?="
    assert readable_text(raw).strip() == "café au lait"


def test_broken_mime_still_summarised() -> None:
    raw = (DATA / "broken_mime.eml").read_bytes()
    summary = summarize(raw)
    assert summary.subject == "broken MIME"
    assert summary.date == "not a date at all"
    assert "larry@beta.test" in summary.to
    assert isinstance(readable_text(raw), str)


def test_html_only_rendered_as_text() -> None:
    text = readable_text((DATA / "html_only.eml").read_bytes())
    assert "Welcome!" in text and "Grüße" in text and "<a" not in text


def test_raw_utf8_and_latin1_headers() -> None:
    assert (
        summarize((DATA / "utf8_headers.eml").read_bytes()).subject
        == "Grüße aus Köln — 日本語のテスト"
    )
    assert summarize(b"Subject: caf\xe9\r\n\r\n").subject == "café"


def test_folded_headers_are_unfolded() -> None:
    raw = b"To: a@b.test,\r\n\tc@d.test\r\nSubject: one\r\n two\r\n\r\n"
    summary = summarize(raw)
    assert summary.to == ("a@b.test", "c@d.test")
    assert summary.subject == "one two"


def test_headers_only_up_to_the_blank_line() -> None:
    assert summarize(b"Subject: real\r\n\r\nSubject: in the body\r\n").subject == "real"


_local = st.text("abcdefghijklmnopqrstuvwxyz0123456789._+-", min_size=1, max_size=12)
_domain = st.sampled_from(["alpha.test", "beta.test", "example.com", "x.co"])
_name = st.text("ABCdef xyz", max_size=10)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_name, _local, _domain), min_size=1, max_size=5), st.booleans())
def test_fast_address_path_agrees_with_the_stdlib(entries, quoted: bool) -> None:
    parts = []
    for name, local, domain in entries:
        addr = f"{local}@{domain}"
        display = f'"{name}"' if quoted and name.strip() else name.strip()
        parts.append(f"{display} <{addr}>" if display else addr)
    header = ", ".join(parts)
    expected = tuple(a for _, a in email.utils.getaddresses([header]) if "@" in a)
    assert summarize(f"To: {header}\r\n\r\n".encode()).to == expected


@pytest.mark.parametrize("name", sorted(p.name for p in DATA.glob("*.eml")))
def test_every_fixture_reads_without_error(name: str) -> None:
    raw = (DATA / name).read_bytes()
    summarize(raw)
    readable_text(raw)
