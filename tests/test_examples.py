"""Every example under examples/ runs, parses or says what the defaults say."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from sandbox.config import load_config
from sandbox.testing import Sandbox
from tests.conftest import clean_env, cli, require_binary

EXAMPLES = Path(__file__).parent.parent / "examples"


def test_signup_verification_example_passes_with_the_plugin():
    folder = EXAMPLES / "signup_verification"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder)],
        cwd=folder,
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


def test_relay_tour_script():
    require_binary("swaks")
    require_binary("curl")
    venv_bin = str(Path(sys.executable).parent)
    env = clean_env(
        MAIL_SANDBOX=f"{sys.executable} -m sandbox",
        PYTHON=sys.executable,
        PATH=venv_bin + os.pathsep + os.environ.get("PATH", ""),
    )
    done = subprocess.run(
        ["bash", str(EXAMPLES / "relay_tour.sh")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "10 mx.beta.test." in out
    assert "REFUSED" in out  # realcompany.com is outside every zone
    assert "https://docs.example/relay-tour" in out
    assert out.count("Subject: Relay tour") == 2  # once from POP3, once from IMAP
    assert "held" in out
    assert out.rstrip().endswith("== tour complete")


def test_config_example_loads_and_runs():
    path = EXAMPLES / "config" / "sandbox.toml"
    done = cli("config", "--config", str(path))
    assert done.returncode == 0, done.stderr
    assert '[domains."bank.test"]' in done.stdout
    config = load_config(config_file=str(path), env={})
    assert [d.name for d in config.domains] == [
        "shop.test",
        "bank.test",
        "flaky.test",
        "broken.test",
    ]
    assert {a.address for a in config.accounts} == {"larry@bank.test", "ops@shop.test"}
    with Sandbox(config=config) as sandbox:
        chaos = sandbox.runtime.chaos.settings()
        assert chaos["bank.test"].mx is not None and chaos["bank.test"].mx.mode == "greylist"
        assert chaos["broken.test"].dns is not None


def test_framework_snippets_use_the_default_addresses():
    text = (EXAMPLES / "frameworks.md").read_text()
    defaults = load_config(env={})
    smtp_ports = {defaults.smtp.port, defaults.smtps.port}
    mentioned = {int(p) for p in re.findall(r"(?i)\bport\b\W{0,4}(\d{2,5})", text)}
    mentioned |= {int(p) for p in re.findall(r"(?i)MAIL_PORT=(\d+)", text)}
    assert mentioned, "no port found in the snippets"
    assert mentioned <= smtp_ports, f"ports {mentioned - smtp_ports} are not the defaults"
    hosts = set(re.findall(r"(?i)(?:host|address|server)\W{0,4}\"?(\d+\.\d+\.\d+\.\d+)", text))
    assert hosts == {defaults.host}
    for framework in ("Django", "Flask", "Rails", "Laravel", "nodemailer"):
        assert framework in text
    readme = (EXAMPLES / "frameworks.md").read_text()
    for value in (defaults.smtp.port, defaults.pop3.port, defaults.imap.port):
        assert f"127.0.0.1:{value}" in readme
