"""The POP3 session with scripted transcripts against a real store in a temp file."""

from __future__ import annotations

import asyncio
import base64
import random
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.config import Account, Config, load_config
from sandbox.events import EntriesCopied, EntriesExpunged, Event, MessagesMoved
from sandbox.pop3.backend import FETCH_BATCH, StorePop3Backend, apop_digest
from sandbox.pop3.codec import NeedData, Pop3Codec, to_wire
from sandbox.pop3.session import Pop3Session, Pop3Settings, State
from sandbox.store import INBOX, TRASH, Copy, MessageFilter, NewMessage, SqliteStore
from tests.pop3_fixtures import mail

LARRY = "larry@beta.test"


class Transcript:
    """Send lines through the codec into a session; get back every reply byte.

    Like the server, it takes the reply from ``handle_now`` when there is one, and awaits
    ``handle`` otherwise; ``immediate`` counts the former.
    """

    def __init__(self, session: Pop3Session) -> None:
        self.session = session
        self.codec = Pop3Codec(session.settings.max_line)
        self.closed = False
        self.start_tls = False
        self.immediate = 0

    async def send_bytes(self, data: bytes) -> bytes:
        self.codec.receive_data(data)
        out = b""
        while not self.closed and not self.start_tls:
            item = self.codec.next_command()
            if isinstance(item, NeedData):
                break
            reply = self.session.handle_now(item)
            if reply is None:
                reply = await self.session.handle(item)
            else:
                self.immediate += 1
                assert not reply.close and not reply.start_tls
            out += reply.data
            self.closed = reply.close
            self.start_tls = reply.start_tls
        return out

    async def send(self, line: str | bytes) -> bytes:
        data = line.encode() if isinstance(line, str) else line
        return await self.send_bytes(data + b"\r\n")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = await SqliteStore.open(str(tmp_path / "s.sqlite3"))
    yield s
    await s.close()


def make_config(tmp_path: Path, accounts: tuple[Account, ...] = ()) -> Config:
    return replace(
        load_config(env={}, flags={"data": str(tmp_path / "s.sqlite3")}), accounts=accounts
    )


@pytest.fixture
def events() -> list[Event]:
    return []


@pytest.fixture
def backend(store: SqliteStore, tmp_path: Path, events: list[Event]) -> StorePop3Backend:
    store.bus.listen(events.append)
    return StorePop3Backend(store, make_config(tmp_path))


def session(backend: StorePop3Backend, **kw: object) -> Transcript:
    return Transcript(Pop3Session(backend, hostname="pop.beta.test", **kw))  # type: ignore[arg-type]


async def deliver(store: SqliteStore, raw: bytes, *boxes: str) -> None:
    boxes = boxes or (LARRY,)
    await store.ingest(NewMessage(raw, "a@alpha.test", boxes, "test", tuple(map(Copy, boxes))))


async def login(t: Transcript, user: str = LARRY) -> bytes:
    assert (await t.send(f"USER {user}")).startswith(b"+OK")
    return await t.send("PASS anything")


async def test_greeting_carries_a_fresh_apop_timestamp(backend: StorePop3Backend) -> None:
    first, second = session(backend).session, session(backend).session
    assert re.fullmatch(
        rb"\+OK mail-sandbox POP3 ready <\d+\.\d+\.\d+@pop\.beta\.test>\r\n", first.greeting()
    )
    assert first.timestamp != second.timestamp


async def test_a_whole_session(store: SqliteStore, backend: StorePop3Backend) -> None:
    one = mail("one", ".dot first\r\nplain\r\n")
    two = mail("two", "line\nbare lf\n")  # stored with bare LFs in the body
    await deliver(store, one)
    await deliver(store, two)
    t = session(backend)
    sizes = (len(one), len(to_wire(two)))
    assert await t.send("USER Larry@Beta.TEST") == b"+OK send PASS for larry@beta.test\r\n"
    assert await t.send("PASS with spaces ok") == (
        f"+OK larry@beta.test has 2 messages ({sum(sizes)} octets)\r\n".encode()
    )
    assert await t.send("STAT") == f"+OK 2 {sum(sizes)}\r\n".encode()
    assert await t.send("LIST") == (
        f"+OK 2 messages ({sum(sizes)} octets)\r\n1 {sizes[0]}\r\n2 {sizes[1]}\r\n.\r\n".encode()
    )
    assert await t.send("LIST 2") == f"+OK 2 {sizes[1]}\r\n".encode()
    retr = await t.send("RETR 1")
    assert retr.startswith(f"+OK {sizes[0]} octets\r\n".encode())
    assert b"\r\n..dot first\r\nplain\r\n.\r\n" in retr
    retr2 = await t.send("RETR 2")
    assert retr2.endswith(b"line\r\nbare lf\r\n.\r\n")
    assert len(retr2.split(b"\r\n", 1)[1]) - 3 == sizes[1], "LIST size is the octets sent"
    assert (
        await t.send("TOP 1 0")
        == b"+OK top of message follows\r\n" + one.split(b"\r\n\r\n")[0] + b"\r\n\r\n.\r\n"
    )
    uidl = await t.send("UIDL")
    uids = re.findall(rb"^(\d) (\S+)\r$", uidl, re.M)
    assert [n for n, _ in uids] == [b"1", b"2"] and uids[0][1].endswith(b".1")
    assert await t.send("UIDL 1") == b"+OK 1 " + uids[0][1] + b"\r\n"
    assert await t.send("DELE 1") == b"+OK message 1 deleted\r\n"
    assert await t.send("DELE 1") == b"-ERR message 1 already deleted; RSET undeletes it\r\n"
    assert await t.send("RETR 1") == b"-ERR message 1 already deleted; RSET undeletes it\r\n"
    assert await t.send("STAT") == f"+OK 1 {sizes[1]}\r\n".encode()
    assert (await t.send("LIST")).count(b"\r\n") == 3, "deleted messages are not listed"
    assert await t.send("RSET") == f"+OK maildrop has 2 messages ({sum(sizes)} octets)\r\n".encode()
    assert await t.send("DELE 2") == b"+OK message 2 deleted\r\n"
    assert await t.send("NOOP") == b"+OK\r\n"
    assert (
        await t.send("RETR 3")
        == b"-ERR no message 3: the maildrop has 2 messages (LIST shows them)\r\n"
    )
    assert await t.send("QUIT") == b"+OK signing off (1 deleted, 1 left in the maildrop)\r\n"
    assert t.closed and t.session.state is State.CLOSED


async def test_commands_refused_by_state(backend: StorePop3Backend) -> None:
    t = session(backend)
    assert (
        await t.send("STAT")
        == b"-ERR STAT needs a login first: USER and PASS, APOP or AUTH PLAIN\r\n"
    )
    assert await t.send("PASS x") == b"-ERR send USER first, then PASS\r\n"
    assert (
        await t.send("XYZZY")
        == b'-ERR unknown command "XYZZY"; CAPA lists what this server does\r\n'
    )
    assert (
        await t.send("USER")
        == b"-ERR USER takes one mailbox address, like USER larry@beta.test\r\n"
    )
    assert await t.send("USER bob") == (
        b'-ERR [AUTH] "bob" is not a mailbox: log in with an address like larry@beta.test,'
        b' or "all" for every INBOX\r\n'
    )
    await login(t)
    assert await t.send("USER x@beta.test") == (
        b"-ERR already logged in as larry@beta.test; USER is only allowed before login\r\n"
    )
    assert await t.send("STLS") == (
        b"-ERR STLS is only allowed before login (RFC 2595 \xc2\xa74); reconnect to use it\r\n"
    )
    assert await t.send("RETR one") == b'-ERR "one" is not a message number; numbers start at 1\r\n'
    assert await t.send("TOP 1") == b"-ERR usage: TOP message number, number of body lines\r\n"
    assert await t.send("NOOP now") == b"-ERR usage: NOOP\r\n"
    assert t.session.bad_commands == 9
    assert await t.send("QUIT") == b"+OK signing off (0 deleted, 0 left in the maildrop)\r\n"


async def test_quit_before_login_and_capa_in_each_state(backend: StorePop3Backend) -> None:
    t = session(backend, tls_available=True)
    capa = await t.send("CAPA")
    assert capa.startswith(b"+OK")
    for cap in (
        b"TOP",
        b"UIDL",
        b"USER",
        b"SASL PLAIN",
        b"RESP-CODES",
        b"AUTH-RESP-CODE",
        b"PIPELINING",
        b"STLS",
        b"EXPIRE NEVER",
        b"IMPLEMENTATION mail-sandbox",
    ):
        assert b"\r\n" + cap + b"\r\n" in capa, cap
    await login(t)
    capa = await t.send("CAPA")
    assert b"STLS" not in capa and b"USER" not in capa and b"\r\nUIDL\r\n" in capa
    t2 = session(backend)
    assert b"STLS" not in await t2.send("CAPA"), "no STLS without a TLS context"
    assert (
        await t2.send("STLS") == b"-ERR STLS is not available on this port; use POP3S for TLS\r\n"
    )
    assert await t2.send("QUIT") == b"+OK mail-sandbox signing off\r\n" and t2.closed


async def test_stls_reply_then_tls_started(backend: StorePop3Backend) -> None:
    t = session(backend, tls_available=True)
    await t.send("USER larry@beta.test")
    assert await t.send("STLS") == b"+OK begin TLS negotiation\r\n" and t.start_tls
    t.session.tls_started()
    t.start_tls = False
    assert await t.send("PASS x") == b"-ERR send USER first, then PASS\r\n", "USER forgotten"
    assert b"STLS" not in await t.send("CAPA")
    assert await t.send("STLS") == b"-ERR TLS is already active\r\n"


async def test_tls_required_before_auth(backend: StorePop3Backend) -> None:
    strict = Pop3Settings(require_tls_for_auth=True)
    t = session(backend, settings=strict, tls_available=True)
    refusal = b"-ERR [AUTH] TLS required: use STLS or POP3S\r\n"
    assert await t.send("USER larry@beta.test") == refusal
    assert await t.send("AUTH PLAIN AGxhcnJ5QGJldGEudGVzdABw") == refusal
    assert await t.send(f"APOP {LARRY} {'0' * 32}") == refusal
    secure = session(backend, settings=strict, tls_active=True)
    assert (await login(secure)).startswith(b"+OK")


async def test_accounts_refuse_wrong_passwords_and_stay_in_authorization(
    store: SqliteStore, tmp_path: Path
) -> None:
    backend = StorePop3Backend(store, make_config(tmp_path, (Account(LARRY, "s3cret"),)))
    t = session(backend)
    await t.send(f"USER {LARRY}")
    assert (
        await t.send("PASS wrong")
        == b"-ERR [AUTH] wrong user name or password for larry@beta.test\r\n"
    )
    assert t.session.state is State.AUTHORIZATION
    assert await t.send("PASS s3cret") == b"-ERR send USER first, then PASS\r\n"
    await t.send(f"USER {LARRY}")
    assert (await t.send("PASS s3cret")).startswith(b"+OK larry@beta.test has 0 messages")
    other = session(backend)
    await other.send("USER all")
    assert (await other.send("PASS s3cret")).startswith(b"-ERR [AUTH]"), "all has no account"


async def test_apop(store: SqliteStore, tmp_path: Path, backend: StorePop3Backend) -> None:
    # no accounts: any digest, like any password
    t = session(backend)
    assert (await t.send(f"APOP {LARRY} {'f' * 32}")).startswith(b"+OK larry@beta.test has")
    await t.send("QUIT")
    strict = StorePop3Backend(store, make_config(tmp_path, (Account(LARRY, "tanstaaf"),)))
    t = session(strict)
    assert await t.send(f"APOP {LARRY} {'f' * 32}") == (
        b"-ERR [AUTH] wrong user name or APOP digest for larry@beta.test\r\n"
    )
    assert await t.send("APOP larry@beta.test") == (
        b"-ERR APOP takes a user name and an MD5 digest: APOP name digest\r\n"
    )
    digest = apop_digest(t.session.timestamp, "tanstaaf")
    assert (await t.send(f"APOP {LARRY} {digest.upper()}")).startswith(b"+OK")
    # RFC 1939 §7's own example
    assert apop_digest("<1896.697170952@dbc.mtview.ca.us>", "tanstaaf") == (
        "c4c9334bac560ecc979e58001b3e22fb"
    )


async def test_auth_plain(store: SqliteStore, tmp_path: Path) -> None:
    backend = StorePop3Backend(store, make_config(tmp_path, (Account(LARRY, "pw"),)))
    good = base64.b64encode(b"\0larry@beta.test\0pw").decode()
    bad = base64.b64encode(b"\0larry@beta.test\0nope").decode()
    t = session(backend)
    assert await t.send("AUTH") == b"+OK SASL mechanisms follow\r\nPLAIN\r\n.\r\n"
    assert (
        await t.send("AUTH CRAM-MD5")
        == b"-ERR [AUTH] unsupported SASL mechanism CRAM-MD5; use AUTH PLAIN\r\n"
    )
    assert (
        await t.send(f"AUTH PLAIN {bad}")
        == b"-ERR [AUTH] wrong user name or password for larry@beta.test\r\n"
    )
    assert await t.send("AUTH PLAIN") == b"+ \r\n"
    assert await t.send("*") == b"-ERR AUTH cancelled by the client\r\n"
    assert await t.send("AUTH PLAIN") == b"+ \r\n"
    assert await t.send("not base64!") == b"-ERR [AUTH] AUTH PLAIN response is not valid base64\r\n"
    assert await t.send("AUTH PLAIN") == b"+ \r\n"
    assert (await t.send(good)).startswith(b"+OK larry@beta.test has 0 messages")
    other = session(backend)
    as_other = base64.b64encode(b"boss@beta.test\0larry@beta.test\0pw").decode()
    assert await other.send(f"AUTH PLAIN {as_other}") == (
        b"-ERR [AUTH] larry@beta.test may not act as boss@beta.test\r\n"
    )


async def test_maildrop_lock_in_use_and_released_however_the_session_ends(
    backend: StorePop3Backend,
) -> None:
    first = session(backend)
    await login(first)
    second = session(backend)
    await second.send(f"USER {LARRY}")
    assert await second.send("PASS x") == (
        b"-ERR [IN-USE] larry@beta.test is open in another POP3 session;"
        b" end that one (QUIT) and retry\r\n"
    )
    assert second.session.state is State.AUTHORIZATION
    everyone = session(backend)
    await everyone.send("USER all")
    assert (await everyone.send("PASS x")).startswith(b"-ERR [IN-USE]"), "all overlaps larry"
    await first.session.close()  # the connection dropped
    assert (await login(second)).startswith(b"+OK")
    await second.send("QUIT")
    assert (await login(everyone, "all")).startswith(b"+OK")


async def test_bad_command_budget_closes(backend: StorePop3Backend) -> None:
    t = session(backend, settings=Pop3Settings(max_bad_commands=3))
    assert (await t.send("BOGUS")).startswith(b"-ERR unknown")
    assert (await t.send(b"x" * 600)).startswith(b"-ERR line too long: at most 512 octets")
    assert await t.send("BOGUS") == (
        b"-ERR too many bad commands (3): closing the connection;"
        b" reconnect and check what the client sends\r\n"
    )
    assert t.closed


async def test_deletions_happen_only_at_quit_and_move_to_trash(
    store: SqliteStore, backend: StorePop3Backend, events: list[Event]
) -> None:
    for n in range(3):
        await deliver(store, mail(f"m{n}"))
    dropped = session(backend)
    await login(dropped)
    await dropped.send("DELE 1")
    await dropped.send("RETR 2")
    await dropped.session.close()  # no QUIT: RFC 1939 §6, no UPDATE
    inbox = await store.list_messages(MessageFilter(folder=INBOX))
    assert [r.subject for r in inbox] == ["m0", "m1", "m2"]
    assert ("pop3", "retrieved") in [
        (h.step, h.outcome) for h in await store.journey(inbox[1].message_id)
    ]

    t = session(backend)
    await login(t)
    await t.send("DELE 1")
    await t.send("DELE 3")
    assert await t.send("QUIT") == b"+OK signing off (2 deleted, 1 left in the maildrop)\r\n"
    assert [r.subject for r in await store.list_messages(MessageFilter(folder=INBOX))] == ["m1"]
    trash = await store.list_messages(MessageFilter(folder=TRASH))
    assert [(r.subject, r.uid, r.mailbox) for r in trash] == [("m0", 1, LARRY), ("m2", 2, LARRY)]
    assert ("pop3", "deleted") in [
        (h.step, h.outcome) for h in await store.journey(trash[0].message_id)
    ]
    [moved] = [e for e in events if isinstance(e, MessagesMoved)]
    assert [(m[2], m[3], m[4]) for m in moved.moves] == [(LARRY, INBOX, TRASH)] * 2
    [expunged] = [e for e in events if isinstance(e, EntriesExpunged)]
    [copied] = [e for e in events if isinstance(e, EntriesCopied)]
    assert (expunged.mailbox, expunged.folder, [uid for _, uid in expunged.entries]) == (
        LARRY,
        INBOX,
        [1, 3],
    )
    assert (copied.folder, [e[:2] for e in copied.entries]) == (
        TRASH,
        [(r.id, r.uid) for r in trash],
    )
    # UIDL of what is left is unchanged by the move
    again = session(backend)
    await login(again)
    assert (await again.send("UIDL 1")).endswith(b".2\r\n")


async def test_all_sees_every_inbox_and_deletes_into_each_trash(
    store: SqliteStore, backend: StorePop3Backend
) -> None:
    await deliver(store, mail("to both"), LARRY, "mo@gamma.test")
    await store.ingest(NewMessage(mail("sent"), "x@alpha.test", (), "test", (Copy(LARRY, "Sent"),)))
    t = session(backend)
    assert (await login(t, "ALL")).startswith(b"+OK all has 2 messages")
    uidl = await t.send("UIDL")
    assert len(set(re.findall(rb"^\d (\S+)\r$", uidl, re.M))) == 2, "unique across mailboxes"
    await t.send("DELE 2")
    await t.send("QUIT")
    [trashed] = await store.list_messages(MessageFilter(folder=TRASH))
    assert trashed.mailbox == "mo@gamma.test"


async def test_message_removed_by_another_client_meanwhile(
    store: SqliteStore, backend: StorePop3Backend
) -> None:
    await deliver(store, mail("gone"))
    t = session(backend)
    await login(t)
    await store.clear()
    assert await t.send("RETR 1") == (
        b"-ERR message 1 was removed by another client since login;"
        b" QUIT and log in again to see the current maildrop\r\n"
    )
    assert (await t.send("QUIT")).startswith(b"+OK")


async def test_wire_size_computed_in_sql_matches_the_bytes_sent(
    store: SqliteStore, backend: StorePop3Backend
) -> None:
    rng = random.Random(1939)
    pieces = [b"a", b"\r", b"\n", b"\r\n", b".", b"\x00", b"\xff", b"\xc3\xa9", b" "]
    raws = [b"", b"x", b"\n", b"\r", b"\r\r\n", b".\n"]
    raws += [b"".join(rng.choice(pieces) for _ in range(rng.randrange(1, 40))) for _ in range(200)]
    for raw in raws:
        await deliver(store, raw)
    drop = await backend.open_maildrop(LARRY)
    fetched = await drop.fetch([e.entry_id for e in drop.entries])
    for entry in drop.entries:
        assert entry.size == len(to_wire(fetched[entry.entry_id])), fetched[entry.entry_id]
    await drop.close()


async def test_a_download_in_order_reads_ahead_and_never_waits_for_the_store(
    store: SqliteStore, backend: StorePop3Backend
) -> None:
    count = FETCH_BATCH * 2 + 20
    for n in range(count):
        await deliver(store, mail(f"m{n}", "." * (n % 3) + "body\r\n"))
    t = session(backend)
    await login(t)
    fetches: list[int] = []
    maildrop = t.session._maildrop
    assert maildrop is not None
    fetch = maildrop.fetch

    async def counted(ids: Sequence[int]) -> Mapping[int, bytes]:
        fetches.append(len(ids))
        return await fetch(ids)

    maildrop.fetch = counted  # type: ignore[method-assign]
    assert (await t.send("LIST")).count(b"\r\n") == count + 2
    assert t.immediate == 1
    for n in range(1, count + 1):
        if n % 7 == 0:
            assert await t.send(f"DELE {n}") == f"+OK message {n} deleted\r\n".encode()
            continue
        reply = await t.send(f"RETR {n}")
        assert f"Subject: m{n - 1}\r\n".encode() in reply
        dots = b"." * ((n - 1) % 3)
        assert reply.endswith(b"\r\n" + (b"." + dots if dots else b"") + b"body\r\n.\r\n")
        if t.session._ahead is not None:  # a client takes longer than the store
            await asyncio.wait([t.session._ahead])
    assert fetches == [FETCH_BATCH, FETCH_BATCH, 20], "each message read once, in batches"
    assert t.immediate == 1 + count - 1, "only the first RETR waited for the store"
    # Out of order, and again: read from there on, and still right.
    for n in (count, 3, 2, count - 2, 1):
        assert f"Subject: m{n - 1}\r\n".encode() in await t.send(f"RETR {n}")
    assert (await t.send(f"TOP {count - 3} 0")).endswith(b"\r\n\r\n.\r\n")
    assert (await t.send("QUIT")).startswith(b"+OK signing off (")


@pytest.mark.parametrize("ending", ["QUIT", "dropped"])
async def test_retrievals_are_journaled_during_the_download_and_all_written_at_the_end(
    store: SqliteStore, backend: StorePop3Backend, monkeypatch: pytest.MonkeyPatch, ending: str
) -> None:
    monkeypatch.setattr("sandbox.pop3.session.JOURNAL_BATCH", 5)
    for n in range(25):  # five runs of five: the last one leaves nothing for close()
        await deliver(store, mail(f"j{n}"))
    t = session(backend)
    await login(t)
    for n in [*range(1, 26), 3, 7]:
        assert (await t.send(f"RETR {n}")).startswith(b"+OK")
    await t.send("DELE 2")
    if ending == "QUIT":
        assert (await t.send("QUIT")).startswith(b"+OK signing off (1 deleted, 24 left")
    else:
        await t.session.close()
    records = await store.list_messages()
    assert len(records) == 25
    for record in records:
        outcomes = [(h.step, h.outcome) for h in await store.journey(record.message_id)]
        assert outcomes.count(("pop3", "retrieved")) == 1, (record.subject, outcomes)
        deleted = ending == "QUIT" and record.subject == "j1"
        assert (("pop3", "deleted") in outcomes) == deleted


# --- property tests: nothing the peer sends escapes the session --------------------------

GOOD = [
    b"USER larry@beta.test",
    b"PASS x",
    b"STAT",
    b"LIST",
    b"RETR 1",
    b"DELE 1",
    b"TOP 1 2",
    b"UIDL",
    b"RSET",
    b"NOOP",
    b"CAPA",
    b"AUTH PLAIN",
    b"APOP all 00",
    b"LIST 99",
]


async def _fuzz(chunks: list[bytes]) -> None:
    store = await SqliteStore.open(":memory:")
    try:
        await deliver(store, mail("fuzz", ".dot\r\nbody\r\n"))
        backend = StorePop3Backend(store, load_config(env={}, flags={"data": ":memory:"}))
        t = session(backend, tls_available=True)
        for chunk in chunks:
            await t.send_bytes(chunk)
            if t.closed or t.start_tls:
                return
        await t.send_bytes(b"\r\n")  # end any partial line (or a pending AUTH response)
        if not t.closed:
            assert (await t.send("CAPA")).startswith(b"+OK capability list follows\r\n") or t.closed
    finally:
        await store.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=300), max_size=8))
def test_random_bytes_never_escape_the_session(chunks: list[bytes]) -> None:
    asyncio.run(_fuzz(chunks))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.sampled_from(GOOD), st.integers(0, 40), st.binary(max_size=4)), max_size=12
    )
)
def test_mutated_transcripts_never_escape_the_session(
    steps: list[tuple[bytes, int, bytes]],
) -> None:
    chunks = []
    for line, at, junk in steps:
        chunks.append(line[:at] + junk + line[at:] + b"\r\n")
    asyncio.run(_fuzz(chunks))
