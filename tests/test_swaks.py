"""swaks, a real SMTP client, against the submission and MX servers."""

from __future__ import annotations

import subprocess

from sandbox.testing import Sandbox
from tests.conftest import require_binary


def swaks(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_binary("swaks"), *args], capture_output=True, text=True, timeout=60
    )


def test_swaks_pipelining_with_auth(sandbox: Sandbox) -> None:
    host, port = sandbox.smtp_address
    result = swaks(
        "--server",
        f"{host}:{port}",
        "--from",
        "mikaela@alpha.test",
        "--to",
        "larry@beta.test,ceo@realcompany.com",
        "--pipeline",
        "--auth",
        "LOGIN",
        "--auth-user",
        "mikaela",
        "--auth-password",
        "pw",
        "--header",
        "Subject: pipelined",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "<-  250 2.0.0 OK: queued as" in result.stdout
    inbox = sandbox.wait_for_count(2)
    assert {(r.mailbox, r.held) for r in inbox} == {
        ("larry@beta.test", False),
        ("ceo@realcompany.com", True),
    }
    assert {r.subject for r in inbox} == {"pipelined"}


def test_swaks_against_an_mx_server(sandbox: Sandbox) -> None:
    host, port = sandbox.mx_addresses["gamma.test"]
    ok = swaks("--server", f"{host}:{port}", "--from", "a@alpha.test", "--to", "g@gamma.test")
    assert ok.returncode == 0, ok.stdout
    refused = swaks("--server", f"{host}:{port}", "--from", "a@alpha.test", "--to", "b@beta.test")
    assert refused.returncode != 0
    assert "<** 550 5.7.1 Relaying denied" in refused.stdout
    assert [r.mailbox for r in sandbox.messages(folder=None)] == ["g@gamma.test"]
