"""Link extraction: text, HTML, quoted-printable and base64, in order, once each."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

from sandbox.links import links_in, urls_in_html, urls_in_text

DATA = Path(__file__).parent / "data"


def test_html_only_quoted_printable_fixture():
    assert links_in((DATA / "html_only.eml").read_bytes()) == ["https://app.example/verify?t=abc"]


def test_text_only_with_sentence_punctuation():
    raw = (
        b"From: a@alpha.test\r\nTo: b@beta.test\r\nSubject: hi\r\n\r\n"
        b"Verify at https://app.test/verify?token=abc&x=1.\r\n"
        b"Docs (see https://docs.test/page_(v2)) and <http://plain.test/a>,\r\n"
        b"again https://app.test/verify?token=abc&x=1 and ftp://files.test/x.zip!\r\n"
    )
    assert links_in(raw) == [
        "https://app.test/verify?token=abc&x=1",
        "https://docs.test/page_(v2)",
        "http://plain.test/a",
        "ftp://files.test/x.zip",
    ]


def test_quoted_printable_soft_breaks_and_escapes_are_decoded():
    raw = (
        b"From: a@alpha.test\r\nTo: b@beta.test\r\nSubject: qp\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        b"Click https://app.test/verify?token=3Dabcdefghijklmnopqrstuvwxyz0123456789=\r\n"
        b"ABCDEF&next=3D/home to continue.\r\n"
    )
    assert links_in(raw) == [
        "https://app.test/verify?token=abcdefghijklmnopqrstuvwxyz0123456789ABCDEF&next=/home"
    ]


def test_alternative_parts_base64_html_attributes_and_visible_urls():
    message = EmailMessage()
    message["Subject"] = "both"
    message.set_content("Text: https://app.test/one\n")
    message.add_alternative(
        '<html><head><style>a { background: url("https://css.test/x") }</style></head>'
        '<body><a href="https://app.test/one">go</a> <img src="https://cdn.test/logo.png"/>'
        '<a href="mailto:help@alpha.test">mail</a> <a href="/relative">rel</a>'
        "<p>or paste https://app.test/two?a=1&amp;b=2 in a browser</p>"
        '<a href="https://app.test/three?a=1&amp;b=2">three</a></body></html>',
        subtype="html",
        cte="base64",
    )
    message.add_attachment(
        b"https://attached.test/no", maintype="text", subtype="plain", filename="notes.txt"
    )
    assert links_in(message.as_bytes()) == [
        "https://app.test/one",
        "https://cdn.test/logo.png",
        "https://app.test/two?a=1&b=2",
        "https://app.test/three?a=1&b=2",
    ]


def test_helpers_on_strings():
    assert urls_in_text("nothing here, not even http:// alone") == []
    assert urls_in_html("<a href=' https://x.test/a '>https://x.test/b</a>") == [
        "https://x.test/a",
        "https://x.test/b",
    ]


def test_links_command(mail_sandbox):
    import smtplib

    from tests.conftest import cli

    raw = (DATA / "html_only.eml").read_bytes()
    with smtplib.SMTP(*mail_sandbox.smtp_address) as client:
        client.sendmail("noreply@alpha.test", ["newuser@beta.test"], raw)
        client.sendmail("noreply@alpha.test", ["plain@beta.test"], b"Subject: none\r\n\r\nno\r\n")
    message = mail_sandbox.wait_for(to="newuser@beta.test")
    done = cli("links", str(message.id), "--data", mail_sandbox.data_path)
    assert (done.returncode, done.stdout, done.stderr) == (
        0,
        "https://app.example/verify?t=abc\n",
        "",
    )
    bare = mail_sandbox.wait_for(to="plain@beta.test")
    empty = cli("links", str(bare.id), "--data", mail_sandbox.data_path)
    assert (empty.returncode, empty.stdout) == (1, "")
    assert empty.stderr == f"mail-sandbox: message {bare.id} has no links\n"
    missing = cli("links", "999999", "--data", mail_sandbox.data_path)
    assert missing.returncode == 2
    assert "no message with id 999999" in missing.stderr
