"""Real client binaries against the IMAP endpoint: curl (imap://, imaps://) and mbsync."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import require_binary
from tests.imap.conftest import ImapSandbox

pytestmark = pytest.mark.clients
LARRY = "larry@beta.test"


def curl(imap: ImapSandbox, url_path: str, *args: str, tls: bool = False) -> str:
    binary = require_binary("curl")
    host, port = (imap.imaps if tls else imap.imap).address
    scheme = "imaps" if tls else "imap"
    cmd = [binary, "-sS", "--max-time", "10", "--user", f"{LARRY}:pw"]
    if tls:
        cmd += ["--cacert", str(imap.ca_file)]
    cmd += [*args, f"{scheme}://{host}:{port}/{url_path}"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_curl_list_select_fetch_append(imap: ImapSandbox, tmp_path: Path) -> None:
    imap.deliver(LARRY, "from smtp", "the body\r\n")
    listing = curl(imap, "")
    assert '"/" INBOX' in listing and "\\Sent" in listing
    assert curl(imap, "INBOX", "-X", "EXAMINE INBOX").count("EXISTS") == 1
    fetched = curl(imap, "INBOX/;UID=1")
    assert "Subject: from smtp" in fetched and fetched.endswith("the body\n")
    upload = tmp_path / "upload.eml"
    upload.write_bytes(b"From: curl@alpha.test\r\nSubject: uploaded\r\n\r\nhello\r\n")
    curl(imap, "Sent", "-T", str(upload))
    [record] = imap.sandbox.messages(folder="Sent")
    assert record.subject == "uploaded"
    assert "Subject: uploaded" in curl(imap, "Sent/;UID=1;SECTION=HEADER")


def test_curl_imaps_with_the_sandbox_ca(imap: ImapSandbox) -> None:
    imap.deliver(LARRY, "secret")
    assert "Subject: secret" in curl(imap, "INBOX/;UID=1", tls=True)


def test_curl_starttls_required(imap: ImapSandbox) -> None:
    imap.deliver(LARRY, "upgraded")
    fetched = curl(imap, "INBOX/;UID=1", "--ssl-reqd", "--cacert", str(imap.ca_file))
    assert "Subject: upgraded" in fetched


def mbsync(tmp_path: Path, imap: ImapSandbox, *args: str) -> None:
    binary = require_binary("mbsync")
    host, port = imap.imap.address
    maildir = tmp_path / "maildir"
    maildir.mkdir(exist_ok=True)
    rc = tmp_path / "mbsyncrc"
    rc.write_text(
        f"""IMAPAccount sandbox
Host {host}
Port {port}
User {LARRY}
Pass any
SSLType None
AuthMechs LOGIN

IMAPStore remote
Account sandbox

MaildirStore local
Path {maildir}/
Inbox {maildir}/INBOX
SubFolders Verbatim

Channel sync
Far :remote:
Near :local:
Patterns INBOX Archive
Create Both
Expunge Both
SyncState *
Sync All
"""
    )
    done = subprocess.run(
        [binary, "-c", str(rc), *args, "sync"], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stdout + done.stderr


def maildir_files(tmp_path: Path, folder: str) -> list[Path]:
    root = tmp_path / "maildir" / folder
    return sorted(p for sub in ("cur", "new") for p in (root / sub).glob("*") if p.is_file())


def test_mbsync_both_ways_with_flags_and_deletions(imap: ImapSandbox, tmp_path: Path) -> None:
    for i in range(3):
        imap.deliver(LARRY, f"message {i}", f"body {i}\r\n")
    client = imap.client(LARRY)
    client.create("Archive")
    client.select("INBOX")
    client.store("1", "+FLAGS", "(\\Seen \\Flagged)")

    mbsync(tmp_path, imap)
    files = maildir_files(tmp_path, "INBOX")
    assert len(files) == 3
    assert any(f.name.endswith(":2,FS") for f in files)
    assert (tmp_path / "maildir" / "Archive").is_dir()

    # Local changes go up: a new message, a flag, a deletion.
    local_new = tmp_path / "maildir" / "INBOX" / "new" / "1700000000.local.host"
    local_new.write_bytes(b"From: me@beta.test\r\nSubject: written locally\r\n\r\nlocal\r\n")
    unread = next(f for f in files if f.name.endswith(":2,"))
    unread.rename(unread.with_name(unread.name + "S"))
    flagged = next(f for f in files if f.name.endswith(":2,FS"))
    flagged.rename(flagged.with_name(flagged.name.replace(":2,FS", ":2,FST")))
    # Remote changes come down: a flag and a deletion from another client.
    client.store("3", "+FLAGS", "(\\Answered)")
    client.noop()

    mbsync(tmp_path, imap)
    records = {r.subject: r for r in imap.sandbox.messages(to=LARRY, folder="INBOX")}
    assert "written locally" in records
    assert "message 0" not in records  # trashed locally (T) + Expunge Both
    assert sum("\\Seen" in r.flags for r in records.values()) == 1  # the local S went up
    files = maildir_files(tmp_path, "INBOX")
    assert len(files) == 3
    assert any("R" in f.name.split(":2,")[1] for f in files)

    client.noop()
    client.store("1", "+FLAGS", "(\\Deleted)")
    client.expunge()
    mbsync(tmp_path, imap)
    assert len(maildir_files(tmp_path, "INBOX")) == 2
