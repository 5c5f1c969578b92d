"""The whole sign-up flow against a real (sandboxed) mail server, through the plugin."""

from __future__ import annotations

import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest
from app import make_server

from sandbox.testing import Sandbox


@pytest.fixture
def app_url(mail_sandbox: Sandbox) -> Iterator[str]:
    server = make_server(*mail_sandbox.smtp_address)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_signup_mails_a_link_that_verifies(app_url: str, mail_sandbox: Sandbox) -> None:
    form = urllib.parse.urlencode({"email": "newuser@beta.test"}).encode()
    with urllib.request.urlopen(f"{app_url}/signup", data=form) as response:
        assert response.status == 200
    message = mail_sandbox.wait_for(to="newuser@beta.test", subject="Verify")
    link = next(url for url in message.links if "/verify?token=" in url)
    with urllib.request.urlopen(link) as page:
        assert "newuser@beta.test is verified" in page.read().decode()
    assert message.sender == "noreply@alpha.test"
