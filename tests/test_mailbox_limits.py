"""Issue 9 for POP3 and IMAP: connection budgets, search nesting, and who may read what.

Everything goes through the real listeners of a running sandbox, and every limit is
crossed once: the client gets the protocol's own reply, and the server goes on serving.
"""

from __future__ import annotations

import imaplib
import poplib
import smtplib
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import replace

import pytest

from sandbox.config import Account, Config, LoginsConfig
from sandbox.imap.parser import ParseError, Search, parse_command
from sandbox.testing import Sandbox

LARRY, OPS = "larry@beta.test", "ops@beta.test"
ACCOUNTS = (Account(LARRY, "larry-pw"), Account(OPS, "ops-pw"))


def tls_context(sandbox: Sandbox) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(sandbox.ca_path))


def deliver(sandbox: Sandbox) -> None:
    """One message for larry and one for ops, through beta.test's MX."""
    with smtplib.SMTP(*sandbox.mx_addresses["beta.test"], timeout=10) as client:
        for to in (LARRY, OPS):
            body = f"From: a@alpha.test\r\nTo: {to}\r\nSubject: for {to}\r\n\r\nhello\r\n"
            client.sendmail("a@alpha.test", [to], body.encode())
    sandbox.wait_for_count(2, folder=None)


# --- connections per listener ---------------------------------------------------------


def _greeted(open_conn: Callable[[], socket.socket], greeting: bytes) -> socket.socket:
    """A connection that got the greeting; places freed a moment ago come back
    asynchronously (when the server has ended that session), so retry for a while."""
    deadline = time.monotonic() + 5
    while True:
        sock = open_conn()
        if sock.makefile("rb").readline().startswith(greeting):
            return sock
        sock.close()
        if time.monotonic() > deadline:
            raise AssertionError("a freed connection place was never given back")
        time.sleep(0.05)


def _check_budget(
    open_conn: Callable[[], socket.socket],
    greeting: bytes,
    refusal: bytes,
) -> None:
    held = [_greeted(open_conn, greeting) for _ in range(2)]
    try:
        with open_conn() as extra:
            reader = extra.makefile("rb")
            assert reader.readline().startswith(refusal)
            assert reader.readline() == b""  # and closed
        held.pop().close()
        held.append(_greeted(open_conn, greeting))  # the place came back
    finally:
        for sock in held:
            sock.close()


@pytest.mark.parametrize(
    ("protocol", "greeting", "refusal"),
    [
        ("pop3", b"+OK ", b"-ERR [SYS/TEMP] too many connections (at most 2 on this listener)"),
        (
            "imap",
            b"* OK ",
            b"* BYE [UNAVAILABLE] too many connections (at most 2 on this listener)",
        ),
    ],
)
def test_connection_limit_per_listener(
    config: Config, protocol: str, greeting: bytes, refusal: bytes
) -> None:
    section = getattr(config, protocol)
    config = replace(config, **{protocol: replace(section, max_connections=2)})
    with Sandbox(config=config) as sandbox:
        plain = sandbox.address(protocol)
        _check_budget(lambda: socket.create_connection(plain, timeout=10), greeting, refusal)
        # the implicit-TLS listener has a budget of its own, and both still serve
        held = [_greeted(lambda: socket.create_connection(plain, timeout=10), greeting)]
        held.append(_greeted(lambda: socket.create_connection(plain, timeout=10), greeting))
        context = tls_context(sandbox)
        secure = sandbox.address(protocol + "s")

        def open_tls() -> socket.socket:
            raw = socket.create_connection(secure, timeout=10)
            return context.wrap_socket(raw, server_hostname="localhost")

        try:
            _check_budget(open_tls, greeting, refusal)
        finally:
            for sock in held:
                sock.close()


# --- IMAP search nesting --------------------------------------------------------------


def _search(depth: int, **kw: int) -> ParseError | object:
    line = b"a SEARCH " + b"(" * depth + b"ALL" + b")" * depth + b"\r\n"
    return parse_command(line, **kw)


def test_nesting_limit_in_the_parser() -> None:
    assert isinstance(_search(32), Search)  # the default, 32 levels
    refused = _search(33)
    assert isinstance(refused, ParseError)
    assert refused.render().startswith(b"a BAD Syntax error: Search keys nested more than 32")
    assert isinstance(_search(3, max_nesting=3), Search)
    assert isinstance(_search(4, max_nesting=3), ParseError)
    nots = b"a SEARCH " + b"NOT " * 40 + b"ALL\r\n"  # NOT and OR nest as well
    assert isinstance(parse_command(nots), ParseError)
    # a limit beyond the interpreter's stack is still a BAD, never a crash
    deep = _search(5000, max_nesting=1_000_000)
    assert isinstance(deep, ParseError)
    assert deep.status == "BAD"


def test_nesting_limit_over_imap(config: Config) -> None:
    config = replace(config, imap=replace(config.imap, max_nesting=3))
    with (
        Sandbox(config=config) as sandbox,
        imaplib.IMAP4(*sandbox.imap_address, timeout=10) as client,
    ):
        client.login(LARRY, "any")
        client.select("INBOX")
        with pytest.raises(imaplib.IMAP4.error, match="nested more than 3 levels"):
            client.search(None, "((((ALL))))")
        assert client.search(None, "(((ALL)))")[0] == "OK"  # the connection goes on
        assert client.noop()[0] == "OK"


# --- one account cannot read another's mail -------------------------------------------


def _accounts(config: Config, **logins: object) -> Config:
    return replace(config, accounts=ACCOUNTS, logins=LoginsConfig(**logins))  # type: ignore[arg-type]


def _pop3_subjects(box: poplib.POP3) -> list[str]:
    subjects = []
    for number in range(1, box.stat()[0] + 1):
        lines = box.top(number, 0)[1]
        subjects += [x.decode() for x in lines if x.lower().startswith(b"subject:")]
    return subjects


def _pop3_refused(sandbox: Sandbox, user: str, password: str, match: str) -> None:
    box = poplib.POP3(*sandbox.pop3_address, timeout=10)
    try:
        box.user(user)
        with pytest.raises(poplib.error_proto, match=match):
            box.pass_(password)
    finally:
        box.quit()


def test_pop3_accounts_are_separate(config: Config) -> None:
    with Sandbox(config=_accounts(config)) as sandbox:
        deliver(sandbox)
        _pop3_refused(sandbox, OPS, "larry-pw", r"-ERR \[AUTH\] wrong user name or password")
        _pop3_refused(sandbox, "all", "larry-pw", r"-ERR \[AUTH\] the \"all\" login is off")
        _pop3_refused(sandbox, "all", "", r"-ERR \[AUTH\] the \"all\" login is off")
        box = poplib.POP3(*sandbox.pop3_address, timeout=10)
        try:
            with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):  # APOP, larry's secret
                box.apop(OPS, "larry-pw")
            box.user(LARRY)
            box.pass_("larry-pw")
            assert _pop3_subjects(box) == [f"Subject: for {LARRY}"]
        finally:
            box.quit()


def test_imap_accounts_are_separate(config: Config) -> None:
    with Sandbox(config=_accounts(config)) as sandbox:
        deliver(sandbox)
        host_port = sandbox.imap_address
        with imaplib.IMAP4(*host_port, timeout=10) as client:
            with pytest.raises(imaplib.IMAP4.error, match=r"AUTHENTICATIONFAILED"):
                client.login(OPS, "larry-pw")
            with pytest.raises(imaplib.IMAP4.error, match=r"all login is off"):
                client.login("all", "larry-pw")
            client.login(LARRY, "larry-pw")
            names = b" ".join(line for line in client.list()[1] if isinstance(line, bytes))
            assert OPS.encode() not in names
            assert client.select(f"{OPS}/INBOX")[0] == "NO"
            assert client.select("INBOX")[0] == "OK"
            status, data = client.search(None, "ALL")
            assert status == "OK"
            numbers = data[0].split()
            assert len(numbers) == 1
            fetched = client.fetch(numbers[0], "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")[1]
            item = fetched[0]
            assert isinstance(item, tuple)
            assert f"for {LARRY}".encode() in item[1]
            assert client.search(None, f'SUBJECT "for {OPS}"')[1] == [b""]


# --- the all login with accounts ------------------------------------------------------


def test_all_login_when_enabled(config: Config) -> None:
    with Sandbox(config=_accounts(config, allow_all=True, all_password="all-pw")) as sandbox:
        deliver(sandbox)
        _pop3_refused(sandbox, "all", "larry-pw", r"-ERR \[AUTH\] wrong user name or password")
        box = poplib.POP3(*sandbox.pop3_address, timeout=10)
        try:
            box.user("all")
            box.pass_("all-pw")
            assert sorted(_pop3_subjects(box)) == [f"Subject: for {LARRY}", f"Subject: for {OPS}"]
        finally:
            box.quit()
        box = poplib.POP3(*sandbox.pop3_address, timeout=10)
        try:
            box.apop("all", "all-pw")  # APOP uses the same secret
        finally:
            box.quit()
        with imaplib.IMAP4(*sandbox.imap_address, timeout=10) as client:
            with pytest.raises(imaplib.IMAP4.error, match=r"AUTHENTICATIONFAILED"):
                client.login("all", "larry-pw")
            client.login("all", "all-pw")
            assert client.select(f"{OPS}/INBOX")[0] == "OK"
            assert client.select(f"{LARRY}/INBOX")[0] == "OK"
        # accounts still need their own password
        _pop3_refused(sandbox, LARRY, "all-pw", r"-ERR \[AUTH\] wrong user name or password")


def test_all_login_enabled_without_a_password_is_refused(config: Config) -> None:
    with Sandbox(config=_accounts(config, allow_all=True)) as sandbox:
        _pop3_refused(sandbox, "all", "", r"-ERR \[AUTH\] wrong user name or password")
        with (
            imaplib.IMAP4(*sandbox.imap_address, timeout=10) as client,
            pytest.raises(imaplib.IMAP4.error, match=r"AUTHENTICATIONFAILED"),
        ):
            client.login("all", '""')


def test_all_login_without_accounts_takes_any_password(config: Config) -> None:
    with Sandbox(config=config) as sandbox:
        deliver(sandbox)
        box = poplib.POP3(*sandbox.pop3_address, timeout=10)
        try:
            box.user("all")
            box.pass_("anything")
            assert len(_pop3_subjects(box)) == 2
        finally:
            box.quit()
        with imaplib.IMAP4(*sandbox.imap_address, timeout=10) as client:
            assert client.login("all", "anything")[0] == "OK"
