"""Read commands import only what they use: never Textual, the runtime or the servers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ServeProcess, clean_env

HEAVY = ("textual", "sandbox.runtime", "sandbox.imap", "sandbox.pop3", "sandbox.relay", "aiosmtpd")
PROBE = """
import json, sys
from sandbox.cli import main
sys.argv = ["mail-sandbox", *json.loads(sys.argv[1])]
try:
    main()
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def loaded(argv: list[str]) -> tuple[int, set[str]]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(argv)],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
    )
    report = json.loads(done.stderr.strip().splitlines()[-1])
    return report["code"], set(report["modules"])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    proc = ServeProcess(tmp_path_factory.mktemp("lazy") / "lazy.sqlite3")
    try:
        yield proc
    finally:
        proc.stop()


@pytest.mark.parametrize(
    "argv",
    [
        ["--version"],
        ["--help"],
        ["messages"],
        ["show", "1"],
        ["links", "1"],
        ["wait", "--to", "nobody@beta.test", "--timeout", "0"],
        ["queue"],
        ["chaos"],
        ["config"],
        ["ca"],
        ["dns", "beta.test", "MX"],
    ],
)
def test_read_commands_import_no_server_and_no_tui(served: ServeProcess, argv: list[str]) -> None:
    code, modules = loaded([*argv, "--data", str(served.data)] if argv[0][0] != "-" else argv)
    assert code in (0, 1, 2, None)
    heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY or m.startswith(HEAVY))
    assert heavy == []


def test_completion_lists_commands_without_importing_them(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sandbox"],
        capture_output=True,
        text=True,
        env=clean_env(
            COMP_WORDS="mail-sandbox me", COMP_CWORD="1", _MAIL_SANDBOX_COMPLETE="bash_complete"
        ),
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["plain,messages"]
