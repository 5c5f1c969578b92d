"""The POP3 server over real sockets: poplib, raw sockets and curl (plain, STLS, POP3S)."""

from __future__ import annotations

import base64
import poplib
import socket
import ssl
import subprocess
import threading
from pathlib import Path

import pytest

from sandbox.events import MessagesMoved
from sandbox.pop3 import Pop3Settings
from sandbox.store import INBOX, TRASH
from tests.conftest import require_binary
from tests.pop3_fixtures import Pop3Harness, mail, pop3  # noqa: F401  (fixture)

LARRY = "larry@beta.test"


def client(harness: Pop3Harness, user: str = LARRY) -> poplib.POP3:
    box = poplib.POP3(*harness.address, timeout=10)
    box.user(user)
    box.pass_("anything")
    return box


def raw_lines(harness: Pop3Harness, payload: bytes, replies: int) -> list[bytes]:
    """Send ``payload`` at once; read the greeting and ``replies`` single-line replies."""
    with socket.create_connection(harness.address, timeout=10) as sock:
        reader = sock.makefile("rb")
        greeting = reader.readline()
        sock.sendall(payload)
        return [greeting] + [reader.readline() for _ in range(replies)]


def test_every_command_with_poplib(pop3: Pop3Harness) -> None:  # noqa: F811
    bodies = [mail("first", ".starts with a dot\r\nline\r\n"), mail("second"), mail("third")]
    for raw in bodies:
        pop3.deliver(raw)
    box = client(pop3)
    assert box.getwelcome().startswith(b"+OK mail-sandbox POP3 ready <")
    assert box.stat() == (3, sum(map(len, bodies)))
    _, listing, _ = box.list()
    assert listing == [f"{n} {len(b)}".encode() for n, b in enumerate(bodies, 1)]
    _, lines, octets = box.retr(1)
    assert b"\r\n".join(lines) + b"\r\n" == bodies[0] and octets >= len(bodies[0])
    _, head, _ = box.top(2, 0)
    assert head[-1] == b"" and b"Subject: second" in head
    uidl = box.uidl()[1]
    assert len(uidl) == 3 and box.uidl(2).split()[-1] == uidl[1].split()[-1]
    assert box.dele(2).startswith(b"+OK")
    with pytest.raises(poplib.error_proto, match="already deleted"):
        box.retr(2)
    with pytest.raises(poplib.error_proto, match="no message 9"):
        box.retr(9)
    assert box.noop() == b"+OK"
    assert box.rset().startswith(b"+OK maildrop has 3 messages")
    box.dele(3)
    assert box.quit().startswith(b"+OK signing off (1 deleted")
    assert [r.subject for r in pop3.messages(folder=INBOX)] == ["first", "second"]
    [trashed] = pop3.messages(folder=TRASH)
    assert trashed.subject == "third" and trashed.mailbox == LARRY
    assert ("pop3", "deleted") in pop3.journey_outcomes(trashed)
    assert any(isinstance(e, MessagesMoved) for e in pop3.events)


def test_state_errors_before_login(pop3: Pop3Harness) -> None:  # noqa: F811
    box = poplib.POP3(*pop3.address, timeout=10)
    for call in (box.stat, box.list, lambda: box.retr(1), box.rset):
        with pytest.raises(poplib.error_proto, match="needs a login first"):
            call()
    with pytest.raises(poplib.error_proto, match="send USER first"):
        box.pass_("x")
    assert box.quit().startswith(b"+OK")


def test_capa_contents(pop3: Pop3Harness) -> None:  # noqa: F811
    box = poplib.POP3(*pop3.address, timeout=10)
    caps = box.capa()
    for name in ("TOP", "UIDL", "USER", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "STLS"):
        assert name in caps, name
    assert caps["SASL"] == ["PLAIN"] and caps["IMPLEMENTATION"] == ["mail-sandbox"]
    assert caps["EXPIRE"] == ["NEVER"]
    box.quit()
    s = poplib.POP3_SSL(*pop3.tls_address, context=pop3.tls.client_context(), timeout=10)
    assert "STLS" not in s.capa(), "POP3S is already encrypted"
    s.user(LARRY)
    s.pass_("x")
    assert s.stat() == (0, 0)
    s.quit()


def test_uidl_is_stable_across_sessions_and_apop(pop3: Pop3Harness) -> None:  # noqa: F811
    for n in range(3):
        pop3.deliver(mail(f"m{n}"))
    first = client(pop3)
    before = first.uidl()[1]
    first.dele(1)
    first.quit()
    pop3.deliver(mail("m3"))
    box = poplib.POP3(*pop3.address, timeout=10)
    assert box.apop(LARRY, "any secret: no accounts configured").startswith(b"+OK")
    after = box.uidl()[1]
    uid = {line.split()[1] for line in after}
    assert {line.split()[1] for line in before[1:]} <= uid
    assert before[0].split()[1] not in uid and len(uid) == 3
    box.quit()


def test_auth_plain_over_raw_socket_lines(pop3: Pop3Harness) -> None:  # noqa: F811
    token = base64.b64encode(b"\0larry@beta.test\0pw")
    replies = raw_lines(pop3, b"AUTH PLAIN\r\n" + token + b"\r\nSTAT\r\nQUIT\r\n", 4)
    assert replies[1:] == [
        b"+ \r\n",
        b"+OK larry@beta.test has 0 messages (0 octets)\r\n",
        b"+OK 0 0\r\n",
        b"+OK signing off (0 deleted, 0 left in the maildrop)\r\n",
    ]
    replies = raw_lines(pop3, b"AUTH PLAIN " + token + b"\r\nNOOP\r\n", 2)
    assert replies[1].startswith(b"+OK larry@beta.test has") and replies[2] == b"+OK\r\n"


def test_a_dropped_connection_deletes_nothing(pop3: Pop3Harness) -> None:  # noqa: F811
    pop3.deliver(mail("keep me"))
    box = client(pop3)
    box.dele(1)
    box.sock.close()  # no QUIT
    box = poplib.POP3(*pop3.address, timeout=10)  # wait until the lock is released
    box.user(LARRY)
    for _ in range(50):
        try:
            box.pass_("x")
            break
        except poplib.error_proto:
            box.user(LARRY)
    assert box.stat()[0] == 1
    box.quit()
    assert [r.subject for r in pop3.messages(folder=INBOX)] == ["keep me"]
    assert pop3.messages(folder=TRASH) == []


def test_concurrent_login_gets_in_use(pop3: Pop3Harness) -> None:  # noqa: F811
    first = client(pop3)
    second = poplib.POP3(*pop3.address, timeout=10)
    second.user(LARRY)
    with pytest.raises(poplib.error_proto, match=r"\[IN-USE\]"):
        second.pass_("x")
    first.quit()
    second.user(LARRY)
    assert second.pass_("x").startswith(b"+OK")
    second.quit()


def test_long_lines_and_garbage_get_err_and_the_server_goes_on(pop3: Pop3Harness) -> None:  # noqa: F811
    replies = raw_lines(pop3, b"USER " + b"x" * 10_000 + b"\r\n\x00\xff\xfe garbage\r\nNOOP\r\n", 3)
    assert replies[1].startswith(b"-ERR line too long: at most 512 octets")
    assert replies[2].startswith(b"-ERR unknown command")
    assert replies[3].startswith(b"-ERR NOOP needs a login first")
    box = client(pop3)
    assert box.noop() == b"+OK"
    box.quit()


def test_bad_command_budget_disconnects(tmp_path: Path) -> None:
    with Pop3Harness(tmp_path, settings=Pop3Settings(max_bad_commands=3)) as harness:
        with socket.create_connection(harness.address, timeout=10) as sock:
            reader = sock.makefile("rb")
            reader.readline()
            sock.sendall(b"A\r\nB\r\nC\r\nD\r\n")
            replies = reader.read()  # until the server closes
        assert replies.count(b"-ERR") == 3 and b"too many bad commands" in replies
        assert poplib.POP3(*harness.address, timeout=10).quit().startswith(b"+OK")


def test_pipelining_answers_in_order(pop3: Pop3Harness) -> None:  # noqa: F811
    for n in range(3):
        pop3.deliver(mail(f"p{n}"))
    with socket.create_connection(pop3.address, timeout=10) as sock:
        reader = sock.makefile("rb")
        reader.readline()
        sock.sendall(
            b"USER larry@beta.test\r\nPASS x\r\nRETR 1\r\nRETR 2\r\nDELE 3\r\nSTAT\r\nQUIT\r\n"
        )
        data = reader.read()
    statuses = [line for line in data.split(b"\r\n") if line.startswith((b"+OK", b"-ERR"))]
    assert [s.split()[1] for s in statuses[:2]] == [b"send", b"larry@beta.test"]
    assert statuses[4] == b"+OK message 3 deleted"
    assert statuses[5].startswith(b"+OK 2 ")
    assert data.index(b"Subject: p0") < data.index(b"Subject: p1")
    assert statuses[-1].startswith(b"+OK signing off (1 deleted")


def test_pipelined_answers_stay_in_order_between_immediate_and_task_replies(
    pop3: Pop3Harness,  # noqa: F811
) -> None:
    for n in range(4):
        pop3.deliver(mail(f"q{n}"))
    with socket.create_connection(pop3.address, timeout=10) as sock:
        reader = sock.makefile("rb")
        reader.readline()
        sock.sendall(b"USER larry@beta.test\r\nPASS x\r\nRETR 1\r\n")
        assert [reader.readline()[:3] for _ in range(3)] == [b"+OK"] * 3
        assert b"Subject: q0" in b"".join(iter(lambda: reader.readline(), b".\r\n"))
        # Messages 2-4 are read ahead by now: RETR 2 and DELE 2 are answered where they
        # arrive; the refusal of the second RETR 2, and everything after it, by the task.
        sock.sendall(
            b"RETR 2\r\nDELE 2\r\nRETR 2\r\nLIST 2\r\nRETR 3\r\nBOGUS\r\nSTAT\r\nRETR 4\r\n"
            b"UIDL 4\r\nQUIT\r\n"
        )
        data = reader.read()
    statuses = [line for line in data.split(b"\r\n") if line.startswith((b"+OK", b"-ERR"))]
    assert [s.split(b" ")[0] for s in statuses] == [
        b"+OK", b"+OK", b"-ERR", b"-ERR", b"+OK", b"-ERR", b"+OK", b"+OK", b"+OK", b"+OK"
    ]  # fmt: skip
    assert statuses[1] == b"+OK message 2 deleted"
    assert statuses[6].startswith(b"+OK 3 ")
    assert data.index(b"Subject: q1") < data.index(b"Subject: q2") < data.index(b"Subject: q3")
    assert statuses[-1].startswith(b"+OK signing off (1 deleted, 3 left")


def test_pop3_stls_with_hostname_verification(pop3: Pop3Harness) -> None:  # noqa: F811
    pop3.deliver(mail("secret"))
    box = poplib.POP3(*pop3.address, timeout=10)
    box.stls(context=pop3.tls.client_context())
    assert isinstance(box.sock, ssl.SSLSocket)
    assert "STLS" not in box.capa()
    box.user(LARRY)
    box.pass_("x")
    assert b"Subject: secret" in b"\r\n".join(box.retr(1)[1])
    box.quit()


def test_plaintext_sent_with_stls_is_discarded(pop3: Pop3Harness) -> None:  # noqa: F811
    with socket.create_connection(pop3.address, timeout=10) as raw:
        reader = raw.makefile("rb")
        reader.readline()
        raw.sendall(b"STLS\r\nUSER injected@beta.test\r\n")
        assert reader.readline() == b"+OK begin TLS negotiation\r\n"
        tls = pop3.tls.client_context().wrap_socket(raw, server_hostname="localhost")
        tls.sendall(b"PASS x\r\n")
        assert tls.recv(200) == b"-ERR send USER first, then PASS\r\n"
        tls.close()


def test_plaintext_read_after_stls_in_a_later_read_is_discarded(pop3: Pop3Harness) -> None:  # noqa: F811
    """The injected line arrives in its own read, after STLS was taken for the session but
    before the session acted on it: it must be dropped all the same."""
    assert pop3.plain is not None
    with socket.create_connection(pop3.address, timeout=10) as raw:
        reader = raw.makefile("rb")
        assert reader.readline().startswith(b"+OK")
        [connection] = pop3.plain.connections

        async def two_reads() -> None:  # back to back, with no pass of the loop between
            connection.data_received(b"STLS\r\n")
            connection.data_received(b"USER injected@beta.test\r\n")

        pop3.call(two_reads)
        assert reader.readline() == b"+OK begin TLS negotiation\r\n"
        tls = pop3.tls.client_context().wrap_socket(raw, server_hostname="localhost")
        tls.sendall(b"PASS x\r\n")
        assert tls.recv(200) == b"-ERR send USER first, then PASS\r\n"
        tls.sendall(b"QUIT\r\n")
        assert tls.recv(200).startswith(b"+OK")
        tls.close()


def test_require_tls_before_auth(tmp_path: Path) -> None:
    with Pop3Harness(tmp_path, settings=Pop3Settings(require_tls_for_auth=True)) as harness:
        box = poplib.POP3(*harness.address, timeout=10)
        with pytest.raises(poplib.error_proto, match=r"\[AUTH\] TLS required: use STLS or POP3S"):
            box.user(LARRY)
        box.stls(context=harness.tls.client_context())
        box.user(LARRY)
        assert box.pass_("x").startswith(b"+OK")
        box.quit()


def test_many_clients_at_once(pop3: Pop3Harness) -> None:  # noqa: F811
    for n in range(8):
        pop3.deliver(mail(f"c{n}", to=f"u{n}@beta.test"), f"u{n}@beta.test")
    errors: list[BaseException] = []

    def fetch(n: int) -> None:
        try:
            box = client(pop3, f"u{n}@beta.test")
            assert b"Subject: c%d" % n in b"\r\n".join(box.retr(1)[1])
            box.quit()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=fetch, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert errors == []


# --- curl -------------------------------------------------------------------------------


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    exe = require_binary("curl")
    return subprocess.run(
        [exe, "--silent", "--show-error", "--max-time", "10", "--user", f"{LARRY}:pw", *args],
        capture_output=True,
        text=True,
        timeout=20,
    )


@pytest.mark.clients
def test_curl_list_retr_dele(pop3: Pop3Harness) -> None:  # noqa: F811
    first, second = mail("curl one"), mail("curl two")
    pop3.deliver(first)
    pop3.deliver(second)
    url = "pop3://{}:{}".format(*pop3.address)
    listed = curl(url + "/")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == [f"1 {len(first)}", f"2 {len(second)}"]
    fetched = subprocess.run(
        [require_binary("curl"), "-sS", "--max-time", "10", "--user", f"{LARRY}:pw", url + "/2"],
        capture_output=True,
        timeout=20,
    )
    assert fetched.stdout == second, "byte for byte, CRLF kept"
    deleted = curl(url + "/1", "--request", "DELE", "--list-only")
    assert deleted.returncode == 0, deleted.stderr
    assert [r.subject for r in pop3.messages(folder=INBOX)] == ["curl two"]
    assert [r.subject for r in pop3.messages(folder=TRASH)] == ["curl one"]


@pytest.mark.clients
def test_curl_stls_and_pop3s_with_the_sandbox_ca(pop3: Pop3Harness) -> None:  # noqa: F811
    pop3.deliver(mail("over tls"))
    ca = str(pop3.tls.ca_path)
    port = pop3.address[1]
    upgraded = curl(f"pop3://localhost:{port}/1", "--ssl-reqd", "--cacert", ca)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "Subject: over tls" in upgraded.stdout
    tls_port = pop3.tls_address[1]
    for name in ("localhost", "127.0.0.1"):
        implicit = curl(f"pop3s://{name}:{tls_port}/", "--cacert", ca)
        assert implicit.returncode == 0, implicit.stderr
        assert implicit.stdout.startswith("1 ")
    untrusted = curl(f"pop3s://localhost:{tls_port}/")
    assert untrusted.returncode != 0, "the system store does not know the sandbox CA"


def test_idle_timeout_closes_silently_without_update(tmp_path: Path) -> None:
    with Pop3Harness(tmp_path, settings=Pop3Settings(idle_timeout=0.3)) as harness:
        harness.deliver(mail("stays"))
        box = client(harness)
        box.dele(1)
        rest = box.file.read()  # blocks until the server hangs up
        box.close()
        assert rest == b"", "RFC 1939 §3: no response on autologout"
        assert harness.locked() == set()
        assert [r.subject for r in harness.messages(folder=INBOX)] == ["stays"]


def test_unexpected_failure_is_sys_temp_and_the_server_goes_on(
    pop3: Pop3Harness,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert pop3.backend is not None
    real = pop3.backend.open_maildrop

    async def broken(user: str) -> object:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(pop3.backend, "open_maildrop", broken)
    replies = raw_lines(pop3, b"USER larry@beta.test\r\nPASS x\r\n", 2)
    assert replies[2] == (
        b"-ERR [SYS/TEMP] the sandbox failed while handling this command; reconnect\r\n"
    )
    monkeypatch.setattr(pop3.backend, "open_maildrop", real)
    box = client(pop3)
    assert box.stat() == (0, 0)
    box.quit()
