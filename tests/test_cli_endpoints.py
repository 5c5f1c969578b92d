"""A running sandbox records its endpoints beside its data file; commands find it there."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import ServeProcess, cli


def test_serve_records_its_ready_line_and_removes_it_on_stop(tmp_path: Path) -> None:
    proc = ServeProcess(tmp_path / "box.sqlite3")
    recorded = tmp_path / "box.sqlite3.endpoints.json"
    try:
        assert json.loads(recorded.read_text()) == proc.ready
    finally:
        assert proc.stop() == 0
    assert not recorded.exists()


def test_send_and_dns_with_only_data_reach_the_sandbox_on_free_ports(
    serve_process: ServeProcess,
) -> None:
    data = ["--data", str(serve_process.data)]  # no port flags: the sandbox took free ports
    sent = cli("send", *data, "--from", "a@alpha.test", "--to", "larry@beta.test")
    assert sent.returncode == 0, sent.stderr
    assert cli("wait", *data, "--to", "larry@beta.test", "--timeout", "10").returncode == 0
    answered = cli("dns", *data, "beta.test", "MX")
    assert answered.returncode == 0, answered.stderr
    assert answered.stdout == "10 mx.beta.test.\n"


def test_a_data_file_with_no_sandbox_running_says_so(tmp_path: Path) -> None:
    data = tmp_path / "nobody.sqlite3"
    for argv in (
        ["send", "--from", "a@alpha.test", "--to", "b@beta.test"],
        ["dns", "beta.test", "MX"],
    ):
        result = cli(*argv, "--data", str(data))
        assert result.returncode == 1
        assert result.stderr == (
            f"mail-sandbox: no sandbox is running on {data} (it writes"
            f" nobody.sqlite3.endpoints.json beside the data file while it runs); start one"
            f" with: mail-sandbox serve --data {data}\n"
        )


def test_a_sandbox_killed_without_removing_its_file_is_reported_stopped(tmp_path: Path) -> None:
    data = tmp_path / "killed.sqlite3"
    proc = ServeProcess(data)
    proc.proc.kill()  # SIGKILL: no chance to remove the endpoints file
    proc.stop()
    assert (tmp_path / "killed.sqlite3.endpoints.json").exists()
    result = cli("send", "--data", str(data), "--from", "a@alpha.test", "--to", "b@beta.test")
    assert result.returncode == 1
    host, port = proc.ready["smtp"]
    assert result.stderr.startswith(f"mail-sandbox: cannot reach the sandbox at {host}:{port}")
    assert "it is not running or has stopped" in result.stderr


def test_serve_banner_tells_the_truth_and_names_the_data_file(tmp_path: Path) -> None:
    proc = ServeProcess(tmp_path / "b.sqlite3")
    try:
        proc.proc.terminate()
        _, err = proc.proc.communicate(timeout=10)
    finally:
        proc.stop()
    smtp, smtps, dns = proc.ready["smtp"], proc.ready["smtps"], proc.ready["dns"]
    assert f"SMTP {smtp[0]}:{smtp[1]} (STARTTLS offered, SMTPS (implicit TLS) on {smtps[1]};" in err
    assert "no TLS" not in err
    assert "AUTH optional: any login and password accepted" in err
    assert f"  IMAP  {proc.ready['imap'][0]}:{proc.ready['imap'][1]}\n" in err
    hint = f"(try: mail-sandbox dns --data {proc.data} alpha.test MX)"
    assert f"DNS   {dns[0]}:{dns[1]} {hint}" in err
    assert f"List mail with `mail-sandbox messages --data {proc.data}`" in err
