"""mail-sandbox import / export: mbox (mboxrd), Maildir and .eml, byte for byte."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.mailio import mbox_entry, read_mbox
from tests.conftest import clean_env, cli

FIRST = (
    b"From: Ann <ann@alpha.test>\nTo: bob@beta.test, ceo@realcompany.com\n"
    b"Subject: Quarterly\nDate: Mon, 01 Jan 2024 10:00:00 +0000\n\n"
    b"From the top:\n>From quoted once\n>>From quoted twice\nFrom\tnot a separator\n\nend\n"
)
SECOND = b"From: bob@beta.test\nTo: ann@alpha.test\nSubject: Re: Quarterly\n\nThanks.\n\n\n"
THIRD = b"From: x@gamma.test\nCc: team@gamma.test\nSubject: no final newline\n\nlast line"

QUOTED_FIRST = (
    b"From: Ann <ann@alpha.test>\nTo: bob@beta.test, ceo@realcompany.com\n"
    b"Subject: Quarterly\nDate: Mon, 01 Jan 2024 10:00:00 +0000\n\n"
    b">From the top:\n>>From quoted once\n>>>From quoted twice\nFrom\tnot a separator\n\nend\n"
)
MBOX = (
    b"From ann@alpha.test Mon Jan  1 10:00:00 2024\n"
    + QUOTED_FIRST
    + b"\n"
    + b"From bob@beta.test Tue Jan  2 11:30:05 2024\n"
    + SECOND
    + b"\n"
    + b"From MAILER-DAEMON Wed Jan 10 09:00:00 2024 remote from elsewhere\n"
    + THIRD
    + b"\n\n"
)


def run(data: Path, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return cli(*args, "--data", str(data), input=input)


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_mboxrd_reading_and_writing():
    found = list(read_mbox(MBOX, "x.mbox"))
    assert [f.raw for f in found] == [FIRST, SECOND, THIRD + b"\n"]
    assert found[0].envelope_from == "ann@alpha.test"
    assert found[1].received_at == 1704195005.0
    assert found[2].received_at is None  # "remote from" is not an asctime date
    written = b"".join(mbox_entry(f.raw, "", 0.0, f.from_line) for f in found)
    assert written == MBOX


def test_mbox_round_trip_byte_for_byte(tmp_path: Path):
    data = tmp_path / "s.sqlite3"
    source = tmp_path / "in.mbox"
    source.write_bytes(MBOX)
    assert ok(run(data, "import", str(source))).startswith("imported 3 messages (4 mailbox copies)")
    listed = ok(run(data, "messages", "--json"))
    assert '"mailbox": "ceo@realcompany.com"' in listed and '"held": true' in listed
    assert '"mailbox": "team@gamma.test"' in listed
    out = tmp_path / "out.mbox"
    ok(run(data, "export", "--format", "mbox", str(out)))
    assert out.read_bytes() == MBOX
    # stdout works too, and a second export refuses to overwrite without --force
    assert run(data, "export", "--format", "mbox", str(out)).returncode == 2
    ok(run(data, "export", "--format", "mbox", "--force", str(out)))
    piped = subprocess.run(
        [sys.executable, "-m", "sandbox", "export", "--data", str(data), "--format", "mbox", "-"],
        capture_output=True,
        env=clean_env(),
        timeout=30,
    )
    assert piped.stdout == MBOX


def test_crlf_mbox_round_trip(tmp_path: Path):
    data = tmp_path / "s.sqlite3"
    crlf = MBOX.replace(b"\n", b"\r\n")
    (tmp_path / "crlf.mbox").write_bytes(crlf)
    ok(run(data, "import", str(tmp_path / "crlf.mbox")))
    ok(run(data, "export", "--format", "mbox", str(tmp_path / "out.mbox")))
    assert (tmp_path / "out.mbox").read_bytes() == crlf


def test_eml_files_round_trip_and_mailbox_option(tmp_path: Path):
    data = tmp_path / "s.sqlite3"
    sources = tmp_path / "in"
    sources.mkdir()
    html_only = (Path(__file__).parent / "data" / "html_only.eml").read_bytes()
    for name, raw in (("a.eml", FIRST), ("b.eml", SECOND), ("c.eml", html_only)):
        (sources / name).write_bytes(raw)
    ok(run(data, "import", str(sources / "a.eml"), str(sources / "b.eml")))
    ok(run(data, "import", "--mailbox", "Archive@Gamma.test", str(sources / "c.eml")))
    assert "archive@gamma.test" in ok(run(data, "messages", "--to", "archive@gamma.test"))
    out = tmp_path / "out"
    assert ok(run(data, "export", "--format", "eml", str(out))).startswith("exported 3 messages")
    files = sorted(out.iterdir())
    assert [f.read_bytes() for f in files] == [FIRST, SECOND, html_only]
    assert all(f.suffix == ".eml" for f in files)
    # only one mailbox's messages
    only = tmp_path / "only"
    ok(run(data, "export", "--format", "eml", "--to", "archive@gamma.test", str(only)))
    assert [f.read_bytes() for f in only.iterdir()] == [html_only]
    assert run(data, "export", "--format", "eml", str(out)).returncode == 2  # files exist


def test_maildir_and_a_folder_of_eml_files(tmp_path: Path):
    data = tmp_path / "s.sqlite3"
    maildir = tmp_path / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    (maildir / "cur" / "1700000001.M1P1.host:2,S").write_bytes(FIRST)
    (maildir / "new" / "1700000002.M2P2.host").write_bytes(SECOND)
    (maildir / "tmp" / "1700000003.M3P3.host").write_bytes(b"To: partial@beta.test\n\n")
    folder = tmp_path / "emls"
    folder.mkdir()
    (folder / "x.eml").write_bytes(THIRD)
    ok(run(data, "import", str(maildir), str(folder)))
    out = tmp_path / "out"
    ok(run(data, "export", "--format", "eml", str(out)))
    assert [f.read_bytes() for f in sorted(out.iterdir())] == [FIRST, SECOND, THIRD]


def test_import_refuses_what_it_cannot_place(tmp_path: Path):
    data = tmp_path / "s.sqlite3"
    lost = tmp_path / "lost.eml"
    lost.write_bytes(b"Subject: to nobody\n\nhello\n")
    done = run(data, "import", str(lost))
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"mail-sandbox: {lost}: no recipient in To or Cc; give one with --mailbox ADDRESS"
    )
    assert run(data, "import", "--mailbox", "nobody", str(lost)).returncode == 2
    bad = tmp_path / "bad"
    bad.mkdir()
    assert run(data, "import", str(bad)).returncode == 2
    assert run(data, "import", str(tmp_path / "missing.mbox")).returncode == 2
    assert ok(run(data, "messages")) == ""


def test_a_running_sandbox_sees_imported_mail(mail_sandbox, tmp_path: Path):
    source = tmp_path / "in.mbox"
    source.write_bytes(MBOX)
    done = cli("import", "--data", mail_sandbox.data_path, str(source))
    assert done.returncode == 0, done.stderr
    message = mail_sandbox.wait_for(to="bob@beta.test")
    assert message.raw == FIRST
    assert message.journey[0].step == "imported"
    assert [m.mailbox for m in mail_sandbox.messages(to="@gamma.test")] == ["team@gamma.test"]


def test_progress_bar_only_on_a_terminal(tmp_path: Path):
    data = tmp_path / "s.sqlite3"
    source = tmp_path / "in.mbox"
    source.write_bytes(MBOX)
    leader, follower = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "sandbox", "import", "--data", str(data), str(source)],
            stdout=subprocess.PIPE,
            stderr=follower,
            env=clean_env(),
            timeout=30,
        )
        os.close(follower)
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(leader)
    assert done.returncode == 0
    assert b"importing" in shown
    piped = run(data, "export", "--format", "mbox", str(tmp_path / "o.mbox"))
    assert piped.stderr == ""


@pytest.mark.parametrize("fmt", ["mbox", "eml"])
def test_export_of_an_empty_store(tmp_path: Path, fmt: str):
    done = run(tmp_path / "s.sqlite3", "export", "--format", fmt, str(tmp_path / "out"))
    assert done.returncode == 0
    assert done.stdout.startswith("exported 0 messages")
