"""The real clients, unmodified: npm ``mailpit-api`` and ``mailhog`` driven by small Node
scripts, and PyPI ``mailpit-api-client``. The npm packages are installed by ``.ci/run``
(``npm ci`` in tests/clients); without node or them these skip, unless
MAIL_SANDBOX_REQUIRE_CLIENTS=1."""

from __future__ import annotations

import json
import os
import smtplib
import subprocess
from pathlib import Path
from typing import Any

import pytest

from sandbox.testing import Sandbox
from tests.conftest import require_binary

pytestmark = pytest.mark.clients
CLIENTS = Path(__file__).parent.parent / "clients"


def require_package(name: str) -> None:
    if not (CLIENTS / "node_modules" / name / "package.json").exists():
        message = f"the npm package {name} is not installed (cd tests/clients && npm ci)"
        if os.environ.get("MAIL_SANDBOX_REQUIRE_CLIENTS") == "1":
            pytest.fail(f"MAIL_SANDBOX_REQUIRE_CLIENTS=1 but {message}")
        pytest.skip(message)


def run_node(script: str, *args: str) -> dict[str, Any]:
    node = require_binary("node")
    done = subprocess.run(
        [node, str(CLIENTS / script), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=CLIENTS,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.fixture
def box() -> Any:
    with Sandbox() as running:
        yield running


def test_npm_mailpit_api_client(box: Sandbox) -> None:
    require_package("mailpit-api")
    out = run_node("mailpit_client.mjs", box.http_url)
    assert out["cleared"] == ""
    assert out["sent"]["ID"].isdigit()
    found = out["found"]
    assert found["Subject"] == "From node"
    assert found["From"] == {"Name": "Ann", "Address": "ann@alpha.test"}
    assert found["To"] == [{"Name": "Larry", "Address": "larry@beta.test"}]
    assert found["Text"] == "hello from node\n"
    assert "node" in found["Tags"]
    assert out["list"]["messages_count"] >= 1
    assert {"total", "unread", "messages_count", "start", "tags", "messages"} <= out["list"].keys()
    assert all(m["Attachments"] == 1 for m in out["search"]["messages"])
    assert out["summary"]["Attachments"][0]["FileName"] == "data.csv"
    assert out["headers"]["Subject"] == ["From node"]
    assert "Subject: From node" in out["raw"]
    assert out["part"] == {"type": "text/csv", "text": "a,b\n1,2\n"}
    assert out["unread"] == "ok"
    assert found["ID"] in out["afterUnread"]
    assert found["ID"] in out["afterRead"]
    assert out["tags"] == ["alpha", "beta", "node"]
    assert out["tagsAfter"] == ["gamma"]
    assert out["html"] == "<p>hello from <b>node</b></p>\n"
    assert out["text"] == "hello from node\n"
    assert out["info"]["Messages"] >= 2
    assert out["webui"]["MessageRelay"]["Enabled"] is True
    assert out["released"] == "ok"
    assert {"Name": "", "Address": "moe@gamma.test"} in out["releasedCopy"]["Bcc"]
    assert out["afterSearchDelete"] == 0
    assert found["ID"] not in out["afterDelete"]
    assert "404" in out["missing"]


def _send(box: Sandbox, raw: bytes) -> None:
    with smtplib.SMTP(*box.smtp_address) as smtp:
        smtp.sendmail("ann@alpha.test", ["larry@beta.test"], raw)


QUARTERLY = (
    b"From: Ann <ann@alpha.test>\r\nTo: larry@beta.test\r\n"
    b"Subject: Quarterly =?utf-8?q?r=C3=A9sum=C3=A9?=\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable"
    b"\r\n\r\nCaf=C3=A9 report\r\n--b\r\nContent-Type: application/pdf\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b'Content-Disposition: attachment; filename="r.pdf"\r\n\r\nJVBERi0=\r\n--b--\r\n'
)


def test_npm_mailhog_client_reads_through_v2(box: Sandbox) -> None:
    require_package("mailhog")
    _send(box, QUARTERLY)
    box.wait_for(to="larry@beta.test")
    host, port = box.http_url.removeprefix("http://").rsplit(":", 1)
    out = run_node("mailhog_client.mjs", host, port)
    assert out["total"] == 2  # ann's Sent copy and larry's INBOX copy
    latest = out["latestTo"]
    assert latest["subject"] == "Quarterly résumé"
    assert latest["from"] == "Ann <ann@alpha.test>"
    assert latest["text"] == "Café report"
    assert latest["attachments"] == [{"name": "r.pdf", "type": "application/pdf"}]
    assert out["latestFrom"]["ID"] == latest["ID"]
    assert out["latestContaining"]["subject"] == "Quarterly résumé"
    assert out["search"] == 2
    assert out["afterDelete"] == 1
    assert out["afterDeleteAll"] == 0


def test_pypi_mailpit_api_client(box: Sandbox) -> None:
    from mailpit.client.api import API

    raw = (
        b"From: Ann <ann@alpha.test>\r\nTo: Larry <larry@beta.test>\r\nSubject: Py\r\n"
        b"Date: Tue, 01 Dec 2026 20:15:03 +0000\r\nMessage-ID: <py@alpha.test>\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
        b"Content-Type: text/plain\r\n\r\nbody\r\n--b\r\nContent-Type: text/plain\r\n"
        b'Content-Disposition: attachment; filename="n.txt"\r\n\r\nnotes\r\n--b--\r\n'
    )
    _send(box, raw)
    mail = box.wait_for(to="larry@beta.test")
    api = API(box.http_url)
    listed = api.get_messages()
    assert listed.total == 2
    assert listed.messages[0].id == str(mail.id)  # newest first
    one = api.get_message(str(mail.id))
    assert one.subject == "Py"
    assert one.from_ is not None and one.from_.address == "ann@alpha.test"
    assert [a.file_name for a in one.attachments] == ["n.txt"]
    assert api.get_message_attachment(str(mail.id), one.attachments[0].part_id) == "notes"
    headers = api.get_message_headers(str(mail.id))
    assert headers.message_id == ["<py@alpha.test>"]
    assert headers.delivered_to == ["larry@beta.test"]
    api.put_messages([str(mail.id)], "Read", False)
    assert not next(m for m in api.get_messages().messages if m.id == str(mail.id)).read
    api.delete_messages([str(mail.id)])
    assert [m.id for m in api.get_messages().messages] != [str(mail.id)]
    assert api.get_messages().total == 1
