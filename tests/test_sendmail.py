"""mail-sandbox sendmail: each flag form, and the programs that pipe mail to sendmail."""

from __future__ import annotations

import io
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.sendmail import (
    EX_TEMPFAIL,
    EX_UNAVAILABLE,
    EX_USAGE,
    Invocation,
    SendmailError,
    parse_args,
    prepare,
    read_message,
)
from tests.conftest import clean_env, cli, require_binary

MESSAGE = "From: App <app@alpha.test>\nTo: ann@beta.test\nSubject: Hello\n\nHi Ann.\n"


@pytest.fixture
def unused_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def sendmail(port: int, *args: str, input: str = MESSAGE) -> subprocess.CompletedProcess[str]:
    return cli("sendmail", "--smtp-port", str(port), *args, input=input)


def sendmail_command(port: int) -> str:
    """A shell command line, as php.ini or git configuration would hold it."""
    return f"{shlex.quote(sys.executable)} -m sandbox sendmail --smtp-port {port}"


# --- parsing, without a server --------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["-t"], Invocation(extract_recipients=True)),
        (["-i", "a@x.test"], Invocation(recipients=("a@x.test",), dot_ends_input=False)),
        (["-oi", "a@x.test"], Invocation(recipients=("a@x.test",), dot_ends_input=False)),
        (["-ti"], Invocation(extract_recipients=True, dot_ends_input=False)),
        (["-f", "me@x.test", "a@x.test"], Invocation(recipients=("a@x.test",), sender="me@x.test")),
        (["-fme@x.test", "a@x.test"], Invocation(recipients=("a@x.test",), sender="me@x.test")),
        (
            ["-r", "<me@x.test>", "a@x.test"],
            Invocation(recipients=("a@x.test",), sender="me@x.test"),
        ),
        (
            ["-F", "Cron Daemon", "a@x.test"],
            Invocation(recipients=("a@x.test",), full_name="Cron Daemon"),
        ),
        (
            ["-FCronDaemon", "a@x.test"],
            Invocation(recipients=("a@x.test",), full_name="CronDaemon"),
        ),
        (
            ["-odi", "-oem", "-om", "-bm", "-v", "-B8BITMIME", "-N", "never", "-U", "a@x.test"],
            Invocation(recipients=("a@x.test",), verbose=True),
        ),
        (
            ["a@x.test, B <b@x.test>", "--", "c@x.test"],
            Invocation(recipients=("a@x.test", "b@x.test", "c@x.test")),
        ),
        (
            ["--smtp-port=2000", "--host", "127.0.0.1", "a@x.test"],
            Invocation(recipients=("a@x.test",), flags={"smtp.port": 2000, "host": "127.0.0.1"}),
        ),
    ],
)
def test_flag_forms(args, expected):
    assert parse_args(args) == expected


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["-x", "a@x.test"], "unknown option -x"),
        (["-bs"], "-bs is not supported"),
        (["-oQ/var/spool"], "unknown option -oQ/var/spool"),
        (["-f"], "option -f needs a value"),
        (["--smtp-port", "many"], "needs a port number"),
        (["--what"], "unknown option --what"),
    ],
)
def test_bad_flags_are_usage_errors(args, problem):
    with pytest.raises(SendmailError) as caught:
        parse_args(args)
    assert caught.value.code == EX_USAGE
    assert problem in caught.value.message


def test_a_lone_dot_ends_input_unless_i():
    text = b"Subject: x\n\nline\n.\nafter\n"
    assert read_message(io.BytesIO(text), dot_ends_input=True) == b"Subject: x\n\nline\n"
    assert read_message(io.BytesIO(text), dot_ends_input=False) == text


def test_prepare_adds_missing_headers_and_drops_bcc():
    raw = b"To: a@x.test\nBcc: hidden@y.test,\n  other@y.test\nSubject: s\n\nbody\n"
    prepared = prepare(
        raw, parse_args(["-t", "-F", "Jos\u00e9 Q", "-f", "me@alpha.test"]), user="u", host="h"
    )
    assert prepared.envelope_from == "me@alpha.test"
    assert prepared.recipients == ("a@x.test", "hidden@y.test", "other@y.test")
    text = prepared.data.decode()
    assert "Bcc" not in text and "hidden" not in text
    assert text.startswith("From: =?utf-8?q?Jos=C3=A9_Q?= <me@alpha.test>\r\nDate: ")
    assert "\r\nMessage-ID: <" in text and "@alpha.test>\r\n" in text
    assert text.endswith("To: a@x.test\r\nSubject: s\r\n\r\nbody\r\n")


def test_prepare_body_only_and_defaults():
    prepared = prepare(b"just a body\n", parse_args(["a@x.test"]), user="cron", host="box")
    assert prepared.envelope_from == "cron@box"
    assert prepared.data.decode().endswith("\r\n\r\njust a body\r\n")
    with pytest.raises(SendmailError, match="no recipients") as caught:
        prepare(b"Subject: x\n\nno one\n", parse_args(["-t"]))
    assert caught.value.code == EX_USAGE


# --- against a running sandbox --------------------------------------------------------


def test_recipients_as_arguments(mail_sandbox):
    port = mail_sandbox.smtp_address[1]
    done = sendmail(port, "-i", "ann@beta.test", "bob@gamma.test")
    assert done.returncode == 0, done.stderr
    assert done.stdout == done.stderr == ""
    message = mail_sandbox.wait_for(to="bob@gamma.test", subject="Hello")
    assert message.envelope_from == "app@alpha.test"
    assert message.headers["Message-ID"]
    assert message.text == "Hi Ann.\n"
    assert mail_sandbox.wait_for(to="ann@beta.test")


def test_t_reads_headers_and_removes_bcc(mail_sandbox):
    port = mail_sandbox.smtp_address[1]
    text = "To: ann@beta.test\nCc: Cy <cy@beta.test>\nBcc: boss@gamma.test\nSubject: T\n\nx\n"
    done = sendmail(port, "-t", "-fnoreply@alpha.test", "-v", input=text)
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith("sent: 250")
    secret = mail_sandbox.wait_for(to="boss@gamma.test")
    assert "Bcc" not in secret.headers
    assert secret.envelope_from == "noreply@alpha.test"
    assert secret.headers["From"] == "noreply@alpha.test"
    assert secret.cc == ("cy@beta.test",)
    assert mail_sandbox.wait_for(to="cy@beta.test").subject == "T"


def test_without_i_a_dot_line_ends_the_message(mail_sandbox):
    port = mail_sandbox.smtp_address[1]
    done = sendmail(port, "ann@beta.test", input=MESSAGE + ".\nnot part of it\n")
    assert done.returncode == 0, done.stderr
    assert mail_sandbox.wait_for(to="ann@beta.test").text == "Hi Ann.\n"
    mail_sandbox.clear()
    with_i = sendmail(port, "-oi", "ann@beta.test", input=MESSAGE + ".\nstill part of it\n")
    assert with_i.returncode == 0, with_i.stderr
    assert mail_sandbox.wait_for(to="ann@beta.test").text == "Hi Ann.\n.\nstill part of it\n"


def test_exit_codes_follow_sysexits(mail_sandbox, unused_port):
    unknown = sendmail(mail_sandbox.smtp_address[1], "-Z", "ann@beta.test")
    assert unknown.returncode == EX_USAGE
    assert unknown.stderr.count("\n") == 1
    assert "unknown option -Z" in unknown.stderr
    nobody = sendmail(unused_port, "ann@beta.test")
    assert nobody.returncode == EX_UNAVAILABLE
    assert f"cannot reach the sandbox at 127.0.0.1:{unused_port}" in nobody.stderr
    no_rcpt = sendmail(mail_sandbox.smtp_address[1], input="Subject: x\n\ny\n")
    assert no_rcpt.returncode == EX_USAGE
    assert EX_TEMPFAIL == 75


def test_port_from_the_environment_and_the_group_flag(mail_sandbox):
    port = str(mail_sandbox.smtp_address[1])
    done = cli(
        "sendmail", "ann@beta.test", input=MESSAGE, env=clean_env(MAIL_SANDBOX_SMTP_PORT=port)
    )
    assert done.returncode == 0, done.stderr
    done = cli("--smtp-port", port, "sendmail", "bob@beta.test", input=MESSAGE)
    assert done.returncode == 0, done.stderr
    assert mail_sandbox.wait_for(to="bob@beta.test")


def test_python_m_sandbox_sendmail_module(mail_sandbox):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "sandbox.sendmail",
            "--smtp-port",
            str(mail_sandbox.smtp_address[1]),
            "-t",
        ],
        input=MESSAGE,
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert mail_sandbox.wait_for(to="ann@beta.test")


def test_cron_invocations(mail_sandbox):
    """Debian's cron: -FCronDaemon -i -B8BITMIME -oem USER; cronie adds -odi -oi -t -f."""
    port = mail_sandbox.smtp_address[1]
    output = (
        "From: root (Cron Daemon)\nTo: ops@beta.test\nSubject: Cron <root@box> backup.sh\n"
        "MIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\n"
        "Content-Transfer-Encoding: 8bit\nX-Cron-Env: <SHELL=/bin/sh>\n\nbackup done \u2713\n"
    )
    debian = sendmail(
        port, "-FCronDaemon", "-i", "-B8BITMIME", "-oem", "ops@beta.test", input=output
    )
    assert debian.returncode == 0, debian.stderr
    first = mail_sandbox.wait_for(to="ops@beta.test")
    assert first.text == "backup done \u2713\n"
    assert first.subject == "Cron <root@box> backup.sh"
    mail_sandbox.clear()
    cronie = sendmail(
        port,
        "-FCronDaemon",
        "-i",
        "-odi",
        "-oem",
        "-oi",
        "-t",
        "-f",
        "root",
        input=output.replace("From: root (Cron Daemon)\n", ""),
    )
    assert cronie.returncode == 0, cronie.stderr
    second = mail_sandbox.wait_for(to="ops@beta.test")
    # A bare local name is qualified with the host, as sendmail does (SMTP needs a domain).
    assert second.headers["From"] == f"CronDaemon <root@{socket.gethostname()}>"
    assert second.envelope_from == f"root@{socket.gethostname()}"


def test_php_mail(mail_sandbox, tmp_path: Path):
    php = require_binary("php")
    script = tmp_path / "send.php"
    script.write_text(
        "<?php\n"
        "$ok = mail('ann@beta.test', 'From PHP', \"Line one\\nhttps://app.test/v?t=9\",\n"
        "           ['From' => 'shop@alpha.test', 'Bcc' => 'audit@gamma.test']);\n"
        "exit($ok ? 0 : 3);\n"
    )
    # PHP's default sendmail_path is "sendmail -t -i"; it runs it through /bin/sh.
    path = f"{sendmail_command(mail_sandbox.smtp_address[1])} -t -i"
    done = subprocess.run(
        [php, "-n", "-d", f"sendmail_path={path}", str(script)],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    message = mail_sandbox.wait_for(to="ann@beta.test", subject="From PHP")
    assert message.links == ("https://app.test/v?t=9",)
    assert message.envelope_from == "shop@alpha.test"
    audit = mail_sandbox.wait_for(to="audit@gamma.test")
    assert "Bcc" not in audit.headers


def test_php_mail_reports_failure_when_nothing_listens(unused_port, tmp_path: Path):
    php = require_binary("php")
    script = tmp_path / "send.php"
    script.write_text("<?php exit(mail('ann@beta.test', 's', 'b') ? 0 : 3);\n")
    done = subprocess.run(
        [php, "-n", "-d", f"sendmail_path={sendmail_command(unused_port)} -t -i", str(script)],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
    )
    assert done.returncode == 3


def test_git_send_email(mail_sandbox, tmp_path: Path):
    git = require_binary("git")
    probe = subprocess.run([git, "send-email", "-h"], capture_output=True, text=True)
    if "--sendmail-cmd" not in probe.stdout + probe.stderr:
        require_binary("git-send-email")  # skips (or fails in CI) without git-email
    repo = tmp_path / "repo"
    env = clean_env(
        GIT_AUTHOR_NAME="Dev",
        GIT_AUTHOR_EMAIL="dev@alpha.test",
        GIT_COMMITTER_NAME="Dev",
        GIT_COMMITTER_EMAIL="dev@alpha.test",
        HOME=str(tmp_path),
        GIT_CONFIG_NOSYSTEM="1",
    )

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [git, *args], cwd=repo, capture_output=True, text=True, env=env, timeout=60
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    repo.mkdir()
    run("init", "-q")
    (repo / "README").write_text("hello\n")
    run("add", "README")
    run("commit", "-q", "-m", "Add a README")
    (repo / "README").write_text("hello, world\n")
    run("commit", "-q", "-am", "Say hello to the world")
    run(
        "send-email",
        "--confirm=never",
        "--quiet",
        "--no-chain-reply-to",
        f"--sendmail-cmd={sendmail_command(mail_sandbox.smtp_address[1])}",
        "--from=Dev <dev@alpha.test>",
        "--to=maintainer@beta.test",
        "--envelope-sender=dev@alpha.test",
        "-1",
    )
    patch = mail_sandbox.wait_for(to="maintainer@beta.test")
    assert patch.subject == "[PATCH] Say hello to the world"
    assert patch.envelope_from == "dev@alpha.test"
    assert "+hello, world" in (patch.text or "")
