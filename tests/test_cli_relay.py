"""`mail-sandbox queue` and `mail-sandbox chaos` against a separate `serve` process."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.conftest import ServeProcess, cli


def common(proc: ServeProcess) -> list[str]:
    return ["--data", str(proc.data), "--smtp-port", str(proc.smtp_port)]


def wait_until(check, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


def test_chaos_switches_a_running_sandbox_and_queue_shows_the_deferral(
    serve_process: ServeProcess,
) -> None:
    args = common(serve_process)
    switched = cli("chaos", "beta.test", "tempfail", "--code", "451", *args)
    assert switched.returncode == 0, switched.stderr
    assert switched.stdout.startswith("beta.test: MX: temp-fail with 451 at rcpt")
    assert cli("chaos", *args).stdout == "beta.test: MX: temp-fail with 451 at rcpt\n"
    time.sleep(0.7)  # the running sandbox looks at the chaos settings every half second

    assert cli("send", *args, "--from", "a@alpha.test", "--to", "larry@beta.test").returncode == 0

    def deferred() -> list[dict]:
        lines = cli("queue", "--json", *args).stdout.splitlines()
        items = [json.loads(line) for line in lines]
        return [i for i in items if i["state"] == "deferred"]

    # The second try (1 s after the first) leaves 5 s before the third: room to retry by hand.
    [item] = wait_until(lambda: [i for i in deferred() if i["attempts"] >= 2])
    assert item["domain"] == "beta.test" and item["recipients"] == ["larry@beta.test"]
    assert item["last_reply"].startswith("451 4.7.1 beta.test is set to tempfail")
    table = cli("queue", *args).stdout
    assert table.splitlines()[0].split()[:4] == ["ID", "MESSAGE", "DOMAIN", "RECIPIENTS"]
    assert "deferred" in table

    assert cli("chaos", "beta.test", "off", *args).stdout.startswith("beta.test: off")
    time.sleep(0.7)
    retried = cli("queue", "--retry-now", *args)
    assert retried.stderr == "1 delivery will be retried now\n"
    waited = cli("wait", "--to", "larry@beta.test", "--timeout", "10", *args)
    assert waited.returncode == 0, waited.stderr
    assert wait_until(lambda: cli("queue", "--json", *args).stdout == "")


def test_chaos_dns_fault_from_another_process(serve_process: ServeProcess) -> None:
    args = [*common(serve_process), "--dns-port", str(serve_process.dns_port)]
    assert cli("chaos", "beta.test", "dns-nxdomain", *args).returncode == 0
    assert wait_until(lambda: cli("dns", "beta.test", "MX", *args).stdout == "NXDOMAIN\n", 5)
    assert cli("chaos", "beta.test", "off", *args).returncode == 0
    assert wait_until(
        lambda: cli("dns", "beta.test", "MX", *args).stdout == "10 mx.beta.test.\n", 5
    )


def test_chaos_bad_input_is_exit_2(tmp_path: Path) -> None:
    data = ["--data", str(tmp_path / "d.sqlite3")]
    for argv, text in [
        (["chaos", "nowhere.test", "reject"], "nowhere.test is not a sandbox domain"),
        (["chaos", "beta.test"], "say what beta.test should do"),
        (["chaos", "beta.test", "explode"], "unknown mode 'explode'"),
        (["chaos", "beta.test", "reject", "--code", "451"], "reject needs a 5xx code"),
        (["chaos", "beta.test", "delay"], "delay needs --ms"),
        (["chaos", "beta.test", "reject", "--probability", "2"], "--probability"),
    ]:
        result = cli(*argv, *data)
        assert result.returncode == 2, (argv, result)
        assert text in result.stderr, (argv, result.stderr)
        assert result.stderr.count("\n") == 1


def test_queue_is_empty_without_deliveries(tmp_path: Path) -> None:
    result = cli("queue", "--data", str(tmp_path / "d.sqlite3"))
    assert (result.returncode, result.stdout) == (0, "")
