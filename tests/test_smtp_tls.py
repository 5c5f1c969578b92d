"""TLS on the SMTP side: STARTTLS and implicit TLS with the sandbox CA, and between domains."""

from __future__ import annotations

import smtplib
import ssl
import subprocess
from dataclasses import replace
from email import message_from_bytes
from pathlib import Path

import pytest

from sandbox.config import Config
from sandbox.testing import Sandbox
from tests import statuscodes as S
from tests.conftest import ServeProcess, cli, require_binary


def ca_file(sandbox: Sandbox) -> str:
    return str(sandbox.ca_path)


def test_starttls_on_submission_verifies_with_the_sandbox_ca(sandbox: Sandbox) -> None:
    context = ssl.create_default_context(cafile=ca_file(sandbox))
    with smtplib.SMTP(*sandbox.smtp_address, timeout=10) as client:
        client.ehlo("app.local")
        assert client.has_extn("starttls")
        client.starttls(context=context)  # hostname check against 127.0.0.1
        client.ehlo("app.local")
        assert not client.has_extn("starttls")
        client.login("anyone", "pw")
        client.sendmail("a@alpha.test", ["b@beta.test"], b"Subject: tls\r\n\r\nx\r\n")
    [sent] = sandbox.messages(folder="Sent")
    assert b"with ESMTPSA id" in sent.raw


def test_smtps_implicit_tls(sandbox: Sandbox) -> None:
    host, port = sandbox.smtps_address
    context = ssl.create_default_context(cafile=ca_file(sandbox))
    with smtplib.SMTP_SSL(host, port, context=context, timeout=10) as client:
        client.ehlo("app.local")
        assert not client.has_extn("starttls")
        client.sendmail("a@alpha.test", ["b@beta.test"], b"Subject: smtps\r\n\r\nx\r\n")
    [record] = sandbox.wait_for_count(1, to="b@beta.test", folder=None)
    assert record.subject == "smtps"


def test_every_mx_server_offers_starttls_with_a_certificate_for_its_name(
    sandbox: Sandbox,
) -> None:
    context = ssl.create_default_context(cafile=ca_file(sandbox))
    for domain in ("alpha.test", "beta.test", "gamma.test"):
        host, port = sandbox.mx_addresses[domain]
        with smtplib.SMTP(host, port, timeout=10) as client:
            client.ehlo("x")
            client._host = f"mx.{domain}"  # verify the certificate against the MX host name
            code, _ = client.starttls(context=context)
            assert code == 220


def test_relay_between_domains_negotiates_starttls(sandbox: Sandbox) -> None:
    with smtplib.SMTP(*sandbox.smtp_address, timeout=10) as client:
        client.sendmail("mikaela@alpha.test", ["larry@beta.test"], b"Subject: hop\r\n\r\nx\r\n")
    [record] = sandbox.wait_for_count(1, to="larry@beta.test", folder=None)
    top = message_from_bytes(record.raw).get_all("Received")[0]
    assert "by mx.beta.test (mail-sandbox) with ESMTPS id" in top
    delivered = [h for h in record.journey if h.step == "smtp"]
    assert delivered[0].detail["tls"] is True


def test_tls_required_before_auth(config: Config) -> None:
    config = replace(config, tls=replace(config.tls, require_before_auth=True))
    with (
        Sandbox(config=config) as sandbox,
        smtplib.SMTP(*sandbox.smtp_address, timeout=10) as client,
    ):
        client.ehlo("x")
        assert not client.has_extn("auth"), "AUTH is only offered once TLS is on"
        code, reply = client.docmd("AUTH", "PLAIN AGFueQBwdw==")
        assert code == 538 and reply.startswith(b"5.7.11")
        client.starttls(context=ssl.create_default_context(cafile=ca_file(sandbox)))
        client.ehlo("x")
        assert client.login("any", "pw")[0] == S.ACCEPTED_AUTH


@pytest.mark.parametrize("mode", ["starttls", "tls-on-connect"])
def test_swaks_with_the_ca_verified(sandbox: Sandbox, mode: str) -> None:
    swaks = require_binary("swaks")
    host, port = sandbox.smtp_address if mode == "starttls" else sandbox.smtps_address
    flag = "-tls" if mode == "starttls" else "--tls-on-connect"
    result = subprocess.run(
        [
            swaks,
            "--server",
            f"{host}:{port}",
            flag,
            "--tls-verify",
            "--tls-ca-path",
            ca_file(sandbox),
            "--from",
            "a@alpha.test",
            "--to",
            "b@beta.test",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "TLS started" in result.stdout
    assert "<~  250 2.0.0 OK: queued as" in result.stdout  # swaks marks encrypted lines with ~


def test_ca_command_prints_the_path_last(serve_process: ServeProcess) -> None:
    result = cli("ca", "--data", str(serve_process.data))
    assert result.returncode == 0
    path = result.stdout.strip().splitlines()[-1]
    assert path == str(serve_process.data.parent / "ca.pem")
    assert Path(path).read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert set(serve_process.ready) >= {"smtps", "pop3", "pop3s", "imap", "imaps"}
