"""Every CLI command through a real subprocess, against a real `serve` process."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import FREE_PORTS, ServeProcess, clean_env, cli


def common(proc: ServeProcess) -> list[str]:
    return ["--data", str(proc.data), "--smtp-port", str(proc.smtp_port)]


def test_serve_prints_the_ready_line(serve_process: ServeProcess) -> None:
    ready = serve_process.ready
    assert ready["event"] == "ready"
    assert ready["smtp"][0] == "127.0.0.1" and ready["smtp"][1] > 0
    assert set(ready["mx"]) == {"alpha.test", "beta.test", "gamma.test"}
    assert ready["mx"]["beta.test"][0] == "127.0.0.12"
    assert ready["dns"][0] == "127.0.0.1" and ready["dns"][1] > 0
    assert ready["data"] == str(serve_process.data)


def test_sigterm_stops_cleanly(serve_process: ServeProcess) -> None:
    assert serve_process.stop() == 0


def test_send_then_messages_show_wait_clear(serve_process: ServeProcess, tmp_path: Path) -> None:
    args = common(serve_process)
    attachment = tmp_path / "report.csv"
    attachment.write_text("a,b\n1,2\n")
    sent = cli(
        "send",
        *args,
        "--from",
        "mikaela@alpha.test",
        "--to",
        "larry@beta.test",
        "--to",
        "ceo@realcompany.com",
        "--subject",
        "Quarterly",
        "--body",
        "Numbers inside.",
        "--attach",
        str(attachment),
    )
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.startswith("sent to 2 recipients: 250 2.0.0 OK: queued as ")

    assert cli("wait", *args, "--to", "larry@beta.test").returncode == 0  # relayed to beta.test
    listed = cli("messages", *args)
    assert listed.returncode == 0
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["ID", "RECEIVED", "MAILBOX", "FOLDER", "FROM", "SUBJECT", "SIZE"]
    assert len(lines) == 4
    [held_line] = [line for line in lines if "ceo@realcompany.com" in line]
    assert held_line.endswith("held")

    as_json = cli("messages", *args, "--json", "--to", "larry@beta.test")
    [obj] = [json.loads(line) for line in as_json.stdout.splitlines()]
    for key in (
        "id",
        "mailbox",
        "from",
        "to",
        "cc",
        "subject",
        "date",
        "message_id",
        "size",
        "received_at",
        "held",
        "journey",
    ):
        assert key in obj, key
    assert (obj["mailbox"], obj["from"], obj["subject"], obj["held"]) == (
        "larry@beta.test",
        "mikaela@alpha.test",
        "Quarterly",
        False,
    )
    assert obj["to"] == ["larry@beta.test", "ceo@realcompany.com"]
    assert obj["journey"][0]["step"] == "submitted"

    held = json.loads(cli("messages", *args, "--json", "--to", "ceo@realcompany.com").stdout)
    assert held["held"] is True

    shown = cli("show", str(obj["id"]), *args)
    assert shown.returncode == 0
    assert "Subject:  Quarterly" in shown.stdout and "Numbers inside." in shown.stdout
    assert "Journey:" in shown.stdout and "submitted" in shown.stdout
    raw = subprocess.run(
        [sys.executable, "-m", "sandbox", "show", str(obj["id"]), "--raw", *args],
        capture_output=True,
        env=clean_env(),
        timeout=30,
    )
    assert raw.stdout.startswith(
        b"Return-Path: <mikaela@alpha.test>\r\n"
        b"Received: from mx.alpha.test (mx.alpha.test [127.0.0.11])"
    )
    assert b"Received: from mail-sandbox-cli (localhost [127.0.0.1])" in raw.stdout
    assert b'filename="report.csv"' in raw.stdout
    assert json.loads(cli("show", str(obj["id"]), "--json", *args).stdout)["id"] == obj["id"]

    waited = cli("wait", *args, "--to", "larry@beta.test", "--subject", "Quarter", "--json")
    assert waited.returncode == 0 and json.loads(waited.stdout)["id"] == obj["id"]

    cleared = cli("clear", *args)
    assert cleared.stdout.strip() == "deleted 3 messages"
    assert cli("messages", *args).stdout == ""


def test_wait_blocks_until_the_message_arrives(serve_process: ServeProcess) -> None:
    args = common(serve_process)
    waiter = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sandbox",
            "wait",
            *args,
            "--to",
            "late@beta.test",
            "--timeout",
            "20",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )
    time.sleep(0.5)
    assert waiter.poll() is None, "wait returned before anything was sent"
    assert cli("send", *args, "--from", "a@alpha.test", "--to", "late@beta.test").returncode == 0
    out, err = waiter.communicate(timeout=20)
    assert waiter.returncode == 0, err
    waited = json.loads(out)
    assert waited["mailbox"] == "late@beta.test"
    last = waited["journey"][-1]  # the journey is whole: the relay's reply is on it
    assert (last["step"], last["outcome"]) == ("relay", "delivered")


def test_wait_times_out_with_exit_1(serve_process: ServeProcess) -> None:
    result = cli("wait", *common(serve_process), "--to", "nobody@beta.test", "--timeout", "0.3")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert "no message to nobody@beta.test arrived within 0.3s" in result.stderr


def test_wait_new_ignores_messages_already_there(serve_process: ServeProcess) -> None:
    args = common(serve_process)
    cli("send", *args, "--from", "a@alpha.test", "--to", "b@beta.test")
    assert cli("wait", *args, "--to", "b@beta.test", "--timeout", "5").returncode == 0
    assert cli("wait", *args, "--to", "b@beta.test", "--new", "--timeout", "0.3").returncode == 1


@pytest.mark.parametrize(
    "argv",
    [
        ["serve", "--bogus"],
        ["messages", "--smtp-port", "abc"],
        ["messages", "--smtp-port", "70000"],
        ["show"],
        ["show", "not-a-number"],
        ["wait"],
        ["wait", "--to", "a@b.test", "--timeout", "-1"],
        ["send", "--to", "a@beta.test"],
        ["send", "--from", "a@alpha.test", "--to", "b@beta.test", "--attach", "/nonexistent/file"],
        ["send", "--from", "not-an-address", "--to", "b@beta.test"],
        ["nonsense-command"],
        ["messages", "--data", ":memory:"],
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv: list[str], tmp_path: Path) -> None:
    if "--data" not in argv and argv[0] not in ("nonsense-command", "serve"):
        argv = [*argv, "--data", str(tmp_path / "d.sqlite3")]
    result = cli(*argv)
    assert result.returncode == 2, result
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("mail-sandbox")


def test_show_unknown_id_is_exit_2(tmp_path: Path) -> None:
    result = cli("show", "999", "--data", str(tmp_path / "d.sqlite3"))
    assert result.returncode == 2
    assert "no message with id 999" in result.stderr


def test_bad_config_file_is_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[smtp]\nport = 'x'\n")
    result = cli("config", "--config", str(bad))
    assert result.returncode == 2
    assert (
        result.stderr
        == f"mail-sandbox: bad configuration: {bad}: smtp.port: expected a whole number, got 'x'\n"
    )


def test_config_prints_effective_toml(tmp_path: Path) -> None:
    result = cli(
        "config",
        "--smtp-port",
        "2025",
        "--domain",
        "shop.test",
        env=clean_env(MAIL_SANDBOX_MX_PORT="2626"),
    )
    assert result.returncode == 0
    assert "[smtp]\nport = 2025\n" in result.stdout
    assert "[mx]\nport = 2626\n" in result.stdout
    assert '[domains."shop.test"]\nmx_address = "127.0.0.11"' in result.stdout
    again = tmp_path / "again.toml"
    again.write_text(result.stdout)
    assert cli("config", "--config", str(again)).stdout == result.stdout


def test_send_when_nothing_listens_is_exit_1(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port that was free a moment ago
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = cli("send", "--from", "a@alpha.test", "--to", "b@beta.test", "--smtp-port", str(port))
    assert result.returncode == 1
    assert "cannot reach the sandbox at 127.0.0.1:" in result.stderr
    assert "mail-sandbox serve" in result.stderr


def test_port_in_use_is_one_line(serve_process: ServeProcess, tmp_path: Path) -> None:
    result = cli(
        "serve",
        "--data",
        str(tmp_path / "x.sqlite3"),
        *FREE_PORTS,  # every other listener on a free port: only the SMTP port clashes
        "--smtp-port",
        str(serve_process.smtp_port),
    )
    assert result.returncode == 1
    assert "already in use" in result.stderr and "--smtp-port 0" in result.stderr
    assert result.stderr.count("\n") == 1


def test_no_command_starts_the_servers_and_the_tui(tmp_path: Path) -> None:
    """`mail-sandbox` alone is `up`: run it on a real terminal (a pty), see the endpoints
    header, send a message through the SMTP port it opened, quit with q."""
    import contextlib
    import os
    import pty
    import select
    import smtplib

    port_file = tmp_path / "ports"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        smtp_port = s.getsockname()[1]
    port_file.write_text(str(smtp_port))
    pid, fd = pty.fork()
    if pid == 0:  # the child: the command a user types, on a terminal
        os.environ.update(clean_env(TERM="xterm-256color", COLUMNS="120", LINES="40"))
        os.execv(
            sys.executable,
            [
                sys.executable,
                "-m",
                "sandbox",
                "--data",
                str(tmp_path / "d.sqlite3"),
                "--smtp-port",
                str(smtp_port),
                "--mx-port",
                "0",
                "--dns-port",
                "0",
                "--smtps-port",
                "0",
                "--pop3-port",
                "0",
                "--pop3s-port",
                "0",
                "--imap-port",
                "0",
                "--imaps-port",
                "0",
                "--http-port",
                "0",
            ],
        )
    screen = b""
    try:
        deadline = time.monotonic() + 30
        while f"127.0.0.1:{smtp_port}".encode() not in screen and time.monotonic() < deadline:
            if select.select([fd], [], [], 0.5)[0]:
                screen += os.read(fd, 65536)
        assert f"127.0.0.1:{smtp_port}".encode() in screen, screen[-2000:]
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as client:
            client.sendmail("a@alpha.test", ["b@real.example"], b"Subject: via up\r\n\r\nx\r\n")
        os.write(fd, b"q")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if select.select([fd], [], [], 0.2)[0]:
                with contextlib.suppress(OSError):  # the pty closes as the child exits
                    os.read(fd, 65536)
        else:
            raise AssertionError("q did not quit the TUI")
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        try:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(fd)
    listed = cli(
        "messages", "--data", str(tmp_path / "d.sqlite3"), "--json", "--to", "b@real.example"
    )
    assert json.loads(listed.stdout)["subject"] == "via up"


def test_read_commands_work_while_the_server_writes(serve_process: ServeProcess) -> None:
    args = common(serve_process)
    for i in range(3):
        assert (
            cli("send", *args, "--from", "a@alpha.test", "--to", f"u{i}@beta.test").returncode == 0
        )
        assert cli("messages", *args, "--to", f"u{i}@beta.test", "--json").stdout.count("\n") == 1


def test_listening_beyond_loopback_needs_accounts_or_allow_open(tmp_path: Path) -> None:
    refused = cli("serve", "--host", "0.0.0.0", "--data", str(tmp_path / "d.sqlite3"))
    assert refused.returncode == 1
    assert refused.stderr.startswith("mail-sandbox: refusing to listen on 0.0.0.0 without accounts")
    assert refused.stderr.count("\n") == 1
    proc = ServeProcess(tmp_path / "open.sqlite3", "--host", "0.0.0.0", "--allow-open")
    try:
        assert proc.ready["smtp"][0] == "0.0.0.0"
        assert proc.proc.stderr is not None
        assert "reachable from the network" in proc.proc.stderr.readline()
    finally:
        proc.stop()
