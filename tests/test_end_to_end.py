"""The whole journey through the endpoints `serve` opens: SMTP in, relay, POP3/IMAP out.

Everything here goes through the listeners of one running sandbox (the addresses of its
ready line), with the sandbox's own CA, as a user's mail client would.
"""

from __future__ import annotations

import imaplib
import poplib
import smtplib
import socket
import ssl
import subprocess
import time
from pathlib import Path

from sandbox.testing import Sandbox
from tests.conftest import require_binary

LARRY = "larry@beta.test"


def tls_context(sandbox: Sandbox) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(sandbox.ca_path))


def send(sandbox: Sandbox, subject: str, to: str = LARRY) -> None:
    with smtplib.SMTP(*sandbox.smtp_address, timeout=10) as client:
        client.starttls(context=tls_context(sandbox))
        body = f"From: mikaela@alpha.test\r\nTo: {to}\r\nSubject: {subject}\r\n\r\nhello\r\n"
        client.sendmail("mikaela@alpha.test", [to], body.encode())


def test_smtp_relay_then_pop3_with_stls(sandbox: Sandbox) -> None:
    send(sandbox, "by pop3")
    sandbox.wait_for_count(1, to=LARRY, folder=None)
    client = poplib.POP3(*sandbox.pop3_address, timeout=10)
    try:
        assert "STLS" in client.capa()
        client.stls(context=tls_context(sandbox))
        client.user(LARRY)
        client.pass_("anything")
        count, _ = client.stat()
        assert count == 1
        lines = client.retr(1)[1]
        assert b"Subject: by pop3" in lines
        assert any(line.startswith(b"Received: from mx.alpha.test") for line in lines)
        client.dele(1)
    finally:
        client.quit()
    assert sandbox.messages(to=LARRY, folder="INBOX") == []
    assert [r.subject for r in sandbox.messages(to=LARRY, folder="Trash")] == ["by pop3"]


def test_smtp_relay_then_imaps_and_idle(sandbox: Sandbox) -> None:
    host, port = sandbox.imaps_address
    client = imaplib.IMAP4_SSL(host, port, ssl_context=tls_context(sandbox), timeout=10)
    client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        client.login(LARRY, "x")
        client.select("INBOX")
        tag = client._new_tag().decode()
        client.send(f"{tag} IDLE\r\n".encode())
        assert client.readline().startswith(b"+ ")
        started = time.monotonic()
        send(sandbox, "by imap")
        line = client.readline()  # the relay delivers to beta's MX, IDLE hears of it
        assert line == b"* 1 EXISTS\r\n", line
        assert time.monotonic() - started < 5
        client.send(b"DONE\r\n")
        while not client.readline().startswith(tag.encode()):
            pass
        typ, data = client.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert typ == "OK" and b"Subject: by imap" in data[0][1]
    finally:
        client.logout()


def test_curl_pop3s_and_imap_against_serve_endpoints(sandbox: Sandbox) -> None:
    curl = require_binary("curl")
    send(sandbox, "by curl")
    sandbox.wait_for_count(1, to=LARRY, folder=None)
    ca = str(sandbox.ca_path)
    host, port = sandbox.pop3s_address
    pop = subprocess.run(
        [curl, "-sS", "--cacert", ca, "--user", f"{LARRY}:x", f"pop3s://{host}:{port}/1"],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert pop.returncode == 0, pop.stderr
    assert "Subject: by curl" in pop.stdout
    host, port = sandbox.imap_address
    imap = subprocess.run(
        [
            curl,
            "-sS",
            "--ssl-reqd",
            "--cacert",
            ca,
            "--user",
            f"{LARRY}:x",
            f"imap://{host}:{port}/INBOX;UID=1",
        ],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert imap.returncode == 0, imap.stderr
    assert "Subject: by curl" in imap.stdout


def test_fetchmail_collects_over_pop3s_and_imaps(sandbox: Sandbox, tmp_path: Path) -> None:
    fetchmail = require_binary("fetchmail")
    send(sandbox, "first")
    send(sandbox, "second", to="ops@gamma.test")
    sandbox.wait_for_count(1, to=LARRY, folder=None)
    sandbox.wait_for_count(1, to="ops@gamma.test", folder=None)
    ca = sandbox.ca_path
    for protocol, endpoint_name, user in (
        ("POP3", "pop3s", LARRY),
        ("IMAP", "imaps", "ops@gamma.test"),
    ):
        host, port = sandbox.address(endpoint_name)
        mbox = tmp_path / f"{protocol}.mbox"
        rc = tmp_path / f"{protocol}.rc"
        rc.write_text(
            f'poll localhost via {host} service {port} protocol {protocol} user "{user}"'
            ' password "x"'
            f' ssl sslcertck sslcertfile "{ca}" sslcommonname localhost sslproto "TLS1.2+" keep'
            f' mda "cat >> {mbox}"\n'
        )
        rc.chmod(0o600)
        done = subprocess.run(
            [fetchmail, "-f", str(rc), "--nodetach", "--nosyslog", "-v"],
            capture_output=True,
            text=True,
            timeout=60,
            env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Subject: " in mbox.read_text()


def mbsync_imaps(sandbox: Sandbox, tmp_path: Path, host: str) -> subprocess.CompletedProcess[str]:
    """One mbsync pull of INBOX over IMAPS, verifying the certificate for ``host``."""
    binary = require_binary("mbsync")
    port = sandbox.imaps_address[1]
    maildir = tmp_path / f"maildir-{host}"
    maildir.mkdir()
    rc = tmp_path / f"mbsyncrc-{host}"
    rc.write_text(
        f"""IMAPAccount sandbox
Host {host}
Port {port}
User {LARRY}
Pass any
SSLType IMAPS
CertificateFile {sandbox.ca_path}
SystemCertificates no

IMAPStore remote
Account sandbox

MaildirStore local
Path {maildir}/
Inbox {maildir}/INBOX

Channel pull
Far :remote:
Near :local:
Patterns INBOX
Create Near
Sync Pull
SyncState *
"""
    )
    return subprocess.run(
        [binary, "-c", str(rc), "pull"],
        capture_output=True,
        text=True,
        timeout=30,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )


def test_clients_that_check_dns_names_only_trust_localhost(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """mbsync matches the certificate's DNS names only, never its IP addresses: it must be
    pointed at ``localhost`` (which the certificate carries), as the README says."""
    send(sandbox, "over imaps")
    sandbox.wait_for_count(1, to=LARRY, folder=None)
    by_name = mbsync_imaps(sandbox, tmp_path, "localhost")
    assert by_name.returncode == 0, by_name.stdout + by_name.stderr
    pulled = list((tmp_path / "maildir-localhost" / "INBOX").glob("*/*"))
    assert len(pulled) == 1 and b"Subject: over imaps" in pulled[0].read_bytes()
    by_address = mbsync_imaps(sandbox, tmp_path, "127.0.0.1")
    assert by_address.returncode != 0
    assert "certificate" in (by_address.stdout + by_address.stderr).lower()
