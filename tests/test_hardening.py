"""Hardening fixes (issue 12, smaller defects): each over real sockets, port-0 sandbox."""

from __future__ import annotations

import asyncio
import base64
import gc
import os
import poplib
import smtplib
import socket
import stat
import time
import warnings
from collections.abc import Iterator
from dataclasses import replace

import pytest

from sandbox.chaos import DomainChaos
from sandbox.config import Config, ConfigError, load_config
from sandbox.relay.client import Attempt, Envelope, deliver
from sandbox.relay.routing import Route, Target
from sandbox.runtime import Runtime, RuntimeState, StartupError
from sandbox.testing import Sandbox, sandbox_config
from tests import statuscodes as S


def base_config(**overrides: object) -> Config:
    config = load_config(env={}, flags={})
    return replace(config, **overrides) if overrides else config  # type: ignore[arg-type]


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as running:
        yield running


def smtp_lines(address: tuple[str, int], lines: list[bytes]) -> list[bytes]:
    """Send each line, collect each reply (last line of multi-line ones) until EOF."""
    replies: list[bytes] = []
    with socket.create_connection(address, timeout=10) as sock:
        reader = sock.makefile("rb")
        replies.append(reader.readline())
        for line in lines:
            try:
                sock.sendall(line + b"\r\n")
            except OSError:
                break
            reply = reader.readline()
            while reply[3:4] == b"-":
                reply = reader.readline()
            if not reply:
                break
            replies.append(reply)
        replies.append(reader.read())  # b"" once the server has closed
    return replies


# --- 1. one budget for bad commands: aiosmtpd's own 5-unknown-verbs limit is gone ------


def test_unknown_verbs_count_against_max_bad_commands(sandbox: Sandbox) -> None:
    limit = sandbox.config.smtp.max_bad_commands
    assert limit == 20  # the documented default
    replies = smtp_lines(sandbox.smtp_address, [b"EHLO x"] + [b"BOGUS"] * (limit + 1))
    codes = [int(r[:3]) for r in replies[2:-1]]
    assert codes == [S.SYNTAX_ERROR] * limit + [S.SERVICE_CLOSING]
    assert replies[2].startswith(b'500 5.5.2 Command "BOGUS" not recognized')
    assert replies[-2].startswith(b"421 4.7.0 Too many errors in this session")
    assert replies[-1] == b""  # and the server closed the connection


def test_six_unknown_verbs_then_a_message(sandbox: Sandbox) -> None:
    lines = [b"EHLO x", *[b"XFOO"] * 6, b"MAIL FROM:<a@alpha.test>", b"RCPT TO:<b@beta.test>"]
    replies = smtp_lines(
        sandbox.smtp_address, [*lines, b"DATA", b"Subject: s\r\n\r\nhi\r\n.", b"QUIT"]
    )
    assert [int(r[:3]) for r in replies[2:8]] == [S.SYNTAX_ERROR] * 6
    assert int(replies[-3][:3]) == S.OK  # the message after DATA
    assert sandbox.wait_for(to="b@beta.test", subject="s").subject == "s"


# --- 6. the data file, its -wal/-shm and the TLS keys are owner-only -------------------


def test_data_file_and_keys_are_owner_only(tmp_path) -> None:
    folder = tmp_path / "fresh" / "data"
    data = folder / "sandbox.sqlite3"
    old = os.umask(0o022)  # the common default, which made the file 0644
    try:
        with Sandbox(data=data) as sandbox:
            with smtplib.SMTP(*sandbox.smtp_address, timeout=10) as client:
                client.sendmail("a@alpha.test", ["b@beta.test"], b"Subject: s\r\n\r\nhi\r\n")
            sandbox.wait_for(to="b@beta.test")
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}
    finally:
        os.umask(old)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for name in ("sandbox.sqlite3", "sandbox.sqlite3-wal", "sandbox.sqlite3-shm"):
        assert modes[name] == 0o600, (name, oct(modes[name]))
    keys = [name for name in modes if name.endswith(".key") or "key" in name]
    assert keys
    for name in keys:
        assert modes[name] == 0o600, (name, oct(modes[name]))


def test_an_old_world_readable_data_file_is_tightened(tmp_path) -> None:
    data = tmp_path / "sandbox.sqlite3"
    data.touch(mode=0o644)
    os.chmod(data, 0o644)
    with Sandbox(data=data):
        pass
    assert stat.S_IMODE(data.stat().st_mode) == 0o600


# --- 5. a stopped Runtime says so, and using it is a clear error -----------------------


async def test_runtime_state_and_use_after_stop(tmp_path) -> None:
    runtime = Runtime(sandbox_config(data=str(tmp_path / "sandbox.sqlite3")))
    assert runtime.state is RuntimeState.NEW and not runtime.running
    endpoints = await runtime.start()
    assert runtime.state is RuntimeState.RUNNING and runtime.running
    assert runtime.endpoints == endpoints
    await runtime.stop()
    assert runtime.state is RuntimeState.STOPPED and not runtime.running
    assert runtime.endpoints is None
    with pytest.raises(RuntimeError, match="this Runtime was stopped"):
        runtime.store  # noqa: B018 - the property is what is under test
    with pytest.raises(RuntimeError, match="this Runtime was stopped"):
        await runtime.set_chaos("alpha.test", DomainChaos())
    with pytest.raises(RuntimeError, match="a Runtime starts once"):
        await runtime.start()
    await runtime.stop()  # twice is harmless
    with pytest.raises(ConnectionRefusedError):  # and nothing listens any more
        socket.create_connection(endpoints.smtp, timeout=2).close()


async def test_runtime_that_failed_to_start_is_stopped(tmp_path) -> None:
    config = sandbox_config(data=str(tmp_path / "sandbox.sqlite3"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = replace(config, smtp=replace(config.smtp, port=taken.getsockname()[1]))
        runtime = Runtime(busy)
        with pytest.raises(StartupError, match="already in use"):
            await runtime.start()
    assert runtime.state is RuntimeState.STOPPED


# --- 4. a domain's mx_address beyond loopback follows the --host exposure rule -----------


def exposed_mx_config(tmp_path, accounts: str = "") -> Config:
    toml = tmp_path / "sandbox.toml"
    toml.write_text(
        '[domains."alpha.test"]\nmx_address = "0.0.0.0"\n\n[domains."beta.test"]\n' + accounts
    )
    return load_config(config_file=str(toml), env={}, flags={})


def test_mx_address_beyond_loopback_is_refused_without_accounts(tmp_path) -> None:
    sandbox = Sandbox(config=exposed_mx_config(tmp_path))
    with pytest.raises(StartupError) as refused:
        sandbox.start()
    message = str(refused.value)
    assert "refusing to listen on 0.0.0.0" in message
    assert 'domains."alpha.test".mx_address' in message
    assert "--allow-open" in message
    assert not sandbox.running


def test_mx_address_beyond_loopback_with_accounts_or_allow_open(tmp_path) -> None:
    with_accounts = exposed_mx_config(tmp_path, '\n[accounts]\n"ann@alpha.test" = "pw"\n')
    with Sandbox(config=with_accounts) as sandbox:
        assert sandbox.mx_addresses["alpha.test"][0] == "0.0.0.0"
    allowed = replace(exposed_mx_config(tmp_path), allow_open=True)
    with Sandbox(config=allowed) as sandbox:
        assert sandbox.mx_addresses["alpha.test"][0] == "0.0.0.0"


# --- 3. SMTP AUTH: names normalised as POP3 does, no authzid of another, MAIL FROM tied --


ACCOUNTS = '[accounts]\n"ann@alpha.test" = "ann-pw"\n"bob@alpha.test" = "bob-pw"\n'


@pytest.fixture
def accounts_sandbox(tmp_path) -> Iterator[Sandbox]:
    toml = tmp_path / "sandbox.toml"
    toml.write_text(ACCOUNTS)
    with Sandbox(config=load_config(config_file=str(toml), env={}, flags={})) as running:
        yield running


def submit(sandbox: Sandbox) -> smtplib.SMTP:
    client = smtplib.SMTP(*sandbox.smtp_address, timeout=10)
    client.ehlo("app.test")
    return client


def plain(authzid: str, login: str, password: str) -> str:
    return base64.b64encode(f"{authzid}\0{login}\0{password}".encode()).decode()


def test_smtp_auth_normalises_the_login_as_pop3_does(accounts_sandbox: Sandbox) -> None:
    login = " <Ann@ALPHA.test> "
    with submit(accounts_sandbox) as client:
        code, _ = client.docmd("AUTH", "PLAIN " + plain("", login, "ann-pw"))
        assert code == S.ACCEPTED_AUTH
        client.sendmail("ann@alpha.test", ["b@beta.test"], b"Subject: normal\r\n\r\nhi\r\n")
    pop3 = poplib.POP3(*accounts_sandbox.pop3_address, timeout=10)
    try:  # POP3 takes the same spelling of the same login
        pop3.user(login)
        assert pop3.pass_("ann-pw").startswith(b"+OK")
    finally:
        pop3.quit()
    message = accounts_sandbox.wait_for(to="b@beta.test", subject="normal")
    assert message.journey[0].detail["auth_user"] == "ann@alpha.test"


def test_smtp_auth_refuses_an_authzid_of_another_account(accounts_sandbox: Sandbox) -> None:
    with submit(accounts_sandbox) as client:
        code, text = client.docmd(
            "AUTH", "PLAIN " + plain("bob@alpha.test", "ann@alpha.test", "ann-pw")
        )
        assert code == S.AUTH_FAILED
        assert text.startswith(
            b"5.7.8 Logged in as ann@alpha.test you cannot act as bob@alpha.test"
        )
        # the same login with its own (or no) authzid is fine
        code, _ = client.docmd(
            "AUTH", "PLAIN " + plain("ANN@alpha.test", "ann@alpha.test", "ann-pw")
        )
        assert code == S.ACCEPTED_AUTH


def test_mail_from_is_tied_to_the_login(accounts_sandbox: Sandbox) -> None:
    with submit(accounts_sandbox) as client:
        client.login("ann@alpha.test", "ann-pw")
        code, text = client.mail("bob@alpha.test")
        assert code == S.BAD_ADDRESS
        assert text.startswith(b"5.7.1 <bob@alpha.test> is a configured account")
        assert b"logged in as ann@alpha.test" in text
        assert client.mail("Ann@Alpha.test")[0] == S.OK  # its own address, any spelling
        client.rset()
        assert client.mail("noreply@shop.test")[0] == S.OK  # not an account: allowed
    with submit(accounts_sandbox) as client:  # not logged in at all
        code, text = client.mail("ann@alpha.test")
        assert code == S.BAD_ADDRESS
        assert b"has not logged in" in text
        client.rset()
        assert client.mail("app@alpha.test")[0] == S.OK


def test_without_accounts_any_sender_and_login(sandbox: Sandbox) -> None:
    with submit(sandbox) as client:
        client.login("whoever", "anything")
        client.sendmail("ann@alpha.test", ["b@beta.test"], b"Subject: open\r\n\r\nhi\r\n")
    assert sandbox.wait_for(to="b@beta.test", subject="open").envelope_from == "ann@alpha.test"


# --- 2. a 4xx at DATA defers only the recipients accepted at RCPT ----------------------


class ScriptedMx:
    """A tiny SMTP server on port 0 whose RCPT and DATA replies the test chooses."""

    def __init__(self, rcpt: dict[str, bytes], data: bytes | None) -> None:
        self.rcpt = rcpt
        self.data = data  # None: hang up after DATA's 354 and the message
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> tuple[str, int]:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        host, port = self.server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 mx.scripted.test ESMTP\r\n")
        try:
            while line := await reader.readline():
                verb = line[:4].upper()
                if verb == b"EHLO":
                    writer.write(b"250 mx.scripted.test\r\n")
                elif verb == b"MAIL":
                    writer.write(b"250 2.1.0 OK\r\n")
                elif verb == b"RCPT":
                    address = line.split(b"<", 1)[1].split(b">", 1)[0].decode()
                    writer.write(self.rcpt[address] + b"\r\n")
                elif verb == b"DATA":
                    writer.write(b"354 go ahead\r\n")
                    while await reader.readline() not in (b".\r\n", b""):
                        pass
                    if self.data is None:
                        break
                    writer.write(self.data + b"\r\n")
                elif verb == b"QUIT":
                    writer.write(b"221 2.0.0 Bye\r\n")
                    break
                else:
                    writer.write(b"500 5.5.2 what?\r\n")
                await writer.drain()
        finally:
            writer.close()


RCPT_REPLIES = {
    "ok@scripted.test": b"250 2.1.5 OK",
    "gone@scripted.test": b"550 5.1.1 No such user",
    "later@scripted.test": b"450 4.2.1 Mailbox busy",
}


async def relay_to(mx: ScriptedMx) -> Attempt:
    async with mx as (host, port):
        route = Route((Target("mx.scripted.test", 10, (host,), port),))
        envelope = Envelope(
            sender="app@alpha.test",
            recipients=tuple(RCPT_REPLIES),
            raw=b"Subject: s\r\n\r\nhi\r\n",
            helo="relay.test",
            source_address=None,
        )
        return await deliver(envelope, route, "scripted.test")


async def test_data_4xx_defers_only_recipients_accepted_at_rcpt() -> None:
    attempt = await relay_to(ScriptedMx(RCPT_REPLIES, b"451 4.3.0 Try again later"))
    assert attempt.delivered == ()
    assert sorted(attempt.deferred) == ["later@scripted.test", "ok@scripted.test"]
    assert attempt.bounced == (("gone@scripted.test", "550 5.1.1 No such user"),)


async def test_data_5xx_bounces_those_accepted_keeps_rcpt_deferrals() -> None:
    attempt = await relay_to(ScriptedMx(RCPT_REPLIES, b"554 5.6.0 Content refused"))
    assert attempt.deferred == ("later@scripted.test",)
    assert sorted(attempt.bounced) == [
        ("gone@scripted.test", "550 5.1.1 No such user"),
        ("ok@scripted.test", "554 5.6.0 Content refused"),
    ]


async def test_connection_lost_at_data_keeps_rcpt_refusals() -> None:
    attempt = await relay_to(ScriptedMx(RCPT_REPLIES, None))
    assert sorted(attempt.deferred) == ["later@scripted.test", "ok@scripted.test"]
    assert attempt.bounced == (("gone@scripted.test", "550 5.1.1 No such user"),)


# --- 7. stopping mid-delivery leaves no socket to the garbage collector ---------------


def test_stopping_mid_delivery_closes_every_socket() -> None:
    """Runs without pyproject's old ``ignore:unclosed`` filter: a leak fails the suite."""
    for round_ in range(10):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            with Sandbox() as sandbox:
                with smtplib.SMTP(*sandbox.smtp_address, timeout=10) as client:
                    client.starttls()
                    for n in range(3):
                        client.sendmail(
                            "mikaela@alpha.test",
                            ["larry@beta.test", "ann@gamma.test"],
                            f"Subject: mid-delivery {n}\r\n\r\nx\r\n".encode(),
                        )
                time.sleep(round_ * 0.003)  # stop at a different moment of each delivery
            gc.collect()
        leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
        assert leaks == [], f"round {round_}: {leaks}"


# --- one name per limit: max_bad_commands everywhere ----------------------------------


def test_every_section_calls_the_bad_command_budget_max_bad_commands() -> None:
    config = load_config(env={}, flags={})
    assert (
        config.smtp.max_bad_commands,
        config.pop3.max_bad_commands,
        config.imap.max_bad_commands,
    ) == (20, 10, 20)


def test_old_imap_key_names_the_new_one(tmp_path) -> None:
    toml = tmp_path / "sandbox.toml"
    toml.write_text("[imap]\nbad_command_limit = 5\n")
    with pytest.raises(ConfigError) as error:
        load_config(config_file=str(toml), env={}, flags={})
    message = str(error.value)
    assert "\n" not in message
    assert message.endswith("imap.bad_command_limit: renamed: use imap.max_bad_commands instead")


def test_imap_max_bad_commands_from_a_file_is_used(tmp_path) -> None:
    toml = tmp_path / "sandbox.toml"
    toml.write_text("[imap]\nmax_bad_commands = 2\n")
    config = load_config(config_file=str(toml), env={}, flags={})
    with Sandbox(config=config) as sandbox, socket.create_connection(sandbox.imap_address) as sock:
        reader = sock.makefile("rb")
        assert reader.readline().startswith(b"* OK")
        sock.sendall(b"a1 BOGUS\r\na2 BOGUS\r\n")
        lines = [reader.readline() for _ in range(3)]
    assert lines[0].startswith(b"a1 BAD") and lines[1].startswith(b"a2 BAD")
    assert lines[2].startswith(b"* BYE Too many invalid commands")
