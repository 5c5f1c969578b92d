"""The CLI's output: one id everywhere, bodies in JSON, nothing cut in a pipe, empty lists."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.conftest import ServeProcess, cli


def wait_until(check, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


def copies(data: list[str], *args: str) -> list[dict]:
    listed = cli("messages", *data, "--json", *args)
    assert listed.returncode == 0, listed.stderr
    return [json.loads(line) for line in listed.stdout.splitlines()]


def test_empty_lists_say_so_on_stderr_and_exit_0(tmp_path: Path) -> None:
    data = ["--data", str(tmp_path / "empty.sqlite3")]
    for argv, said in (
        (["messages"], "no messages\n"),
        (["messages", "--to", "larry@beta.test"], "no messages to larry@beta.test\n"),
        (["queue"], "no deliveries waiting: every one is done\n"),
        (["queue", "--json"], "no deliveries waiting: every one is done\n"),
    ):
        result = cli(*argv, *data)
        assert (result.returncode, result.stdout, result.stderr) == (0, "", said)
    alone = cli("messages", "--full", *data)
    assert alone.returncode == 2 and "--full adds the bodies to --json" in alone.stderr


def test_full_json_and_show_carry_bodies_links_and_attachments(
    serve_process: ServeProcess, tmp_path: Path
) -> None:
    data = ["--data", str(serve_process.data)]
    report = tmp_path / "report.csv"
    report.write_text("a,b\n1,2\n")
    subject = "A subject far longer than forty characters, which a terminal table would clip"
    sent = cli(
        "send",
        *data,
        "--from",
        "a@alpha.test",
        "--to",
        "larry@beta.test",
        "--subject",
        subject,
        "--body",
        "Verify: https://app.test/verify?a=1&b=2",
        "--attach",
        str(report),
    )
    assert sent.returncode == 0, sent.stderr
    assert cli("wait", *data, "--to", "larry@beta.test").returncode == 0

    table = cli("messages", *data, "--to", "larry@beta.test").stdout
    assert subject in table  # stdout is a pipe here: nothing is cut
    assert "…" not in table

    [plain] = copies(data, "--to", "larry@beta.test")
    assert "text" not in plain and "attachments" not in plain
    [full] = copies(data, "--to", "larry@beta.test", "--full")
    assert full["id"] == plain["id"]
    assert full["text"].startswith("Verify: https://app.test/verify?a=1&b=2")
    assert full["html"] is None
    assert full["links"] == ["https://app.test/verify?a=1&b=2"]
    assert full["attachments"] == [
        {"filename": "report.csv", "content_type": "text/csv", "size": 8}
    ]
    shown = json.loads(cli("show", *data, str(full["id"]), "--json").stdout)
    assert {k: shown[k] for k in ("text", "links", "attachments")} == {
        k: full[k] for k in ("text", "links", "attachments")
    }
    described = cli("show", *data, str(full["id"])).stdout
    assert "Attachments:\n  report.csv  text/csv  8 B\n" in described


def test_queue_and_journeys_show_copy_ids_and_show_takes_either_form(
    serve_process: ServeProcess,
) -> None:
    data = ["--data", str(serve_process.data)]
    assert cli("chaos", "beta.test", "tempfail", *data).returncode == 0
    time.sleep(0.7)  # the running sandbox looks at the chaos settings every half second
    sent = cli("send", *data, "--from", "a@alpha.test", "--to", "larry@beta.test")
    assert sent.returncode == 0, sent.stderr
    [sent_copy] = copies(data, "--to", "a@alpha.test")

    def waiting() -> list[dict]:
        out = cli("queue", "--json", *data).stdout
        return [json.loads(line) for line in out.splitlines()]

    [delivery] = wait_until(waiting)
    assert delivery["copy_id"] == sent_copy["id"]
    table = cli("queue", *data).stdout.splitlines()
    assert table[0].split()[:2] == ["ID", "MESSAGE"]
    assert table[1].split()[1] == str(sent_copy["id"])  # the id `show` takes

    by_copy = json.loads(cli("show", *data, str(sent_copy["id"]), "--json").stdout)
    by_message = json.loads(cli("show", *data, f"m{delivery['message_id']}", "--json").stdout)
    # The relay keeps retrying (tempfail) between the two calls: the later one may see
    # more hops; everything else, and the hops both saw, are the same.
    seen = len(by_copy["journey"])
    assert by_message["journey"][:seen] == by_copy["journey"]
    assert {**by_message, "journey": None} == {**by_copy, "journey": None}
    bad = cli("show", *data, "seven")
    assert bad.returncode == 2 and "is not a message id" in bad.stderr

    # A bounce names the message it is about by the copy id too (the message id beside it).
    assert cli("chaos", "beta.test", "reject", *data).returncode == 0
    time.sleep(0.7)
    assert cli("queue", "--retry-now", *data).returncode == 0
    assert cli("wait", *data, "--to", "a@alpha.test", "--subject", "Undeliver").returncode == 0
    [dsn] = copies(data, "--to", "a@alpha.test", "--subject", "Undeliver")
    [generated] = [h for h in dsn["journey"] if h["step"] == "bounce" and "about" in h]
    assert generated["about"] == sent_copy["id"]
    assert generated["about_message"] == delivery["message_id"]
    assert f"about={sent_copy['id']}" in cli("show", *data, str(dsn["id"])).stdout
