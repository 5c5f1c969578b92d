"""The pytest plugin, used the way a project uses it: from its own test files.

The inner sessions run in a subprocess, so the plugin is found through its ``pytest11``
entry point exactly as in a project that installed mail-sandbox.
"""

from __future__ import annotations

import pytest

from sandbox.pytest_plugin import REPORT_SECTION

pytest_plugins = ["pytester"]

INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
filterwarnings = error
addopts = --strict-markers
"""

SEND = """
import smtplib
from email.message import EmailMessage


def send(sandbox, to, subject, body="Hello"):
    message = EmailMessage()
    message["From"] = "app@alpha.test"
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)
    with smtplib.SMTP(*sandbox.smtp_address) as client:
        client.send_message(message)
"""


def test_fixtures_marker_isolation_and_failure_report(pytester: pytest.Pytester):
    pytester.makeini(INI)
    pytester.makeconftest(
        SEND.replace("def send", "def _send")
        + """
import pytest


@pytest.fixture
def send():
    return _send
"""
    )
    pytester.makepyfile(
        test_signup="""
import asyncio

import pytest


def test_first_sends(mail_sandbox, send):
    send(mail_sandbox, "ann@beta.test", "Verify your account", "Go to https://app.test/v?t=1")
    message = mail_sandbox.wait_for(to="ann@beta.test", subject="Verify")
    assert message.links == ("https://app.test/v?t=1",)


def test_second_starts_empty(mail_sandbox):
    assert mail_sandbox.messages(folder=None) == []
    assert mail_sandbox.domains == ("alpha.test", "beta.test", "gamma.test")


async def test_async_view(mail_sandbox_async, send):
    await asyncio.to_thread(send, mail_sandbox_async, "bob@gamma.test", "Async hello")
    message = await mail_sandbox_async.wait_for(to="bob@gamma.test")
    assert message.subject == "Async hello"


@pytest.mark.mail_sandbox(domains=["shop.test", "alpha.test"])
def test_marker_domains(mail_sandbox, send):
    assert mail_sandbox.domains == ("shop.test", "alpha.test")
    send(mail_sandbox, "me@shop.test", "Marked")
    assert mail_sandbox.wait_for(to="me@shop.test").subject == "Marked"


def test_chaos_does_not_leak_part_one(mail_sandbox):
    mail_sandbox.chaos("beta.test").reject()


def test_chaos_does_not_leak_part_two(mail_sandbox, send):
    send(mail_sandbox, "cy@beta.test", "After chaos")
    assert mail_sandbox.wait_for(to="cy@beta.test").subject == "After chaos"


def test_fails_and_shows_what_arrived(mail_sandbox, send):
    send(mail_sandbox, "dee@beta.test", "Password reset")
    mail_sandbox.wait_for(to="dee@beta.test")
    mail_sandbox.wait_for(to="dee@beta.test", subject="Welcome", timeout=0.2)


def test_without_the_fixture_fails_without_a_section():
    assert False


def test_with_the_fixture_but_no_mail_fails_without_a_section(mail_sandbox):
    assert mail_sandbox.domains == ("nothing.test",)


def test_journey_is_complete_when_wait_for_returns(mail_sandbox, send):
    send(mail_sandbox, "eve@beta.test", "Journey")
    message = mail_sandbox.wait_for(to="eve@beta.test")
    assert message.journey[-1].step == "relay"
    assert message.journey[-1].outcome == "delivered"
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=7, failed=3)
    output = result.stdout.str()
    assert output.count(REPORT_SECTION) == 1
    result.stdout.fnmatch_lines(
        [
            "*TimeoutError: no message to dee@beta.test with subject containing 'Welcome'*",
            f"*{REPORT_SECTION}*",
            "*messages stored:",
            "*#* dee@beta.test/INBOX from app@alpha.test to dee@beta.test 'Password reset'",
        ]
    )


def test_domains_from_the_command_line_and_the_ini_file(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
):
    pytester.makeini(INI + "mail_sandbox_domains = ini-one.test ini-two.test\n")
    pytester.makepyfile(
        test_domains="""
import os


def test_domains(mail_sandbox):
    assert mail_sandbox.domains == tuple(os.environ["EXPECTED"].split(","))
"""
    )
    monkeypatch.setenv("EXPECTED", "ini-one.test,ini-two.test")
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
    monkeypatch.setenv("EXPECTED", "cli.test,other.test")
    pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--mail-sandbox-domains", "cli.test, other.test"
    ).assert_outcomes(passed=1)


def test_a_session_that_does_not_ask_pays_nothing(pytester: pytest.Pytester):
    pytester.makeini(INI)
    pytester.makepyfile(
        test_plain="""
import sys


def test_plain():
    assert "sandbox.testing" not in sys.modules
"""
    )
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_plugin_works_in_this_session(mail_sandbox):
    """This repository's own tests can use the fixture too."""
    assert mail_sandbox.messages() == []
