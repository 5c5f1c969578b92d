"""Commands that read or clear the data file; they work while a server is running."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from sandbox.cli.errors import bad_input, failure
from sandbox.cli.options import build_config, common_options, pop_common
from sandbox.cli.output import attachment_lines, human_size, journey_lines, json_line, table
from sandbox.config import Config
from sandbox.datafile import prepare_data_file
from sandbox.mime import readable_text
from sandbox.store import MessageFilter, MessageRecord, SqliteStore
from sandbox.store.lookup import journey_with_copy_ids, parse_id, relay_in_flight, resolve

T = TypeVar("T")
POLL_SECONDS = 0.05


def run_with_store(
    config: Config, work: Callable[[SqliteStore], Awaitable[T]], *, read_only: bool = False
) -> T:
    """Run ``work`` on the data file; ``read_only`` for commands that only read, which get
    the quick open (one connection, no write lock, no migration check)."""
    if config.in_memory:
        raise bad_input(
            "--data :memory: only works with serve: an in-memory store lives inside that"
            " process; point this command at the serve instance's data file"
        )

    async def run() -> T:
        prepare_data_file(config.data)
        # A one-shot command: others' changes need not reach its bus.
        store = await (
            SqliteStore.open_for_reading(config.data)
            if read_only
            else SqliteStore.open(config.data, follow=False)
        )
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(run())


@click.command()
@click.option("--to", "to", metavar="ADDRESS", help="Delivered to this mailbox (or @domain).")
@click.option("--from", "sender", metavar="ADDRESS", help="Sent from this address (or @domain).")
@click.option("--subject", metavar="TEXT", help="Subject contains this text.")
@click.option(
    "--json", "as_json", is_flag=True, help="JSON Lines: one object a line, with the journey."
)
@click.option("--full", is_flag=True, help="With --json: also text, html, links, attachments.")
@common_options
@click.pass_context
def messages(
    ctx: click.Context,
    /,
    to: str | None,
    sender: str | None,
    subject: str | None,
    as_json: bool,
    full: bool,
    **kwargs: Any,
) -> None:
    """List stored messages, oldest first: one line per copy in a mailbox folder.

    ID is the copy's id, the one `show`, `links` and the TUI use.
    """
    config = build_config(ctx, pop_common(kwargs))
    flt = MessageFilter(to=to, sender=sender, subject=subject)
    if full and not as_json:
        raise bad_input("--full adds the bodies to --json; pass both")

    async def work(store: SqliteStore) -> None:
        records = await store.list_messages(flt)
        if not records:
            click.echo(f"no messages{' ' + _describe_filter(flt) if to else ''}", err=True)
        elif as_json:
            for record in records:
                raw = await store.raw(record.message_id) or b""
                journey = await journey_with_copy_ids(store, record)
                click.echo(json_line(record, journey, raw, body=full))
        else:
            click.echo(table(records))

    run_with_store(config, work, read_only=True)


@click.command()
@click.argument("message_id", metavar="ID")
@click.option("--raw", is_flag=True, help="Print the message exactly as stored.")
@click.option(
    "--json", "as_json", is_flag=True, help="The message JSON, with text, html, links, attachments."
)
@common_options
@click.pass_context
def show(ctx: click.Context, /, message_id: str, raw: bool, as_json: bool, **kwargs: Any) -> None:
    """Show one message: headers, readable text, attachments and its journey.

    ID is a copy id, as `messages` lists (`show 12`), or a message id as `queue --json`
    gives it, written with an m (`show m7`: that message's first copy).
    """
    config = build_config(ctx, pop_common(kwargs))

    async def work(store: SqliteStore) -> None:
        record = await find_message(store, message_id)
        content = await store.raw(record.message_id) or b""
        journey = await journey_with_copy_ids(store, record)
        if raw:
            sys.stdout.buffer.write(content)
            sys.stdout.flush()
        elif as_json:
            click.echo(json_line(record, journey, content))
        else:
            click.echo(_describe(record, content, journey))

    run_with_store(config, work, read_only=True)


async def find_message(store: SqliteStore, text: str) -> MessageRecord:
    """The copy ``text`` names (``12`` or ``m7``), or the CLI's exit-2 error."""
    if parse_id(text) is None:
        raise bad_input(
            f"{text!r} is not a message id: give a number from `mail-sandbox messages`"
            " (or m and the message_id from `mail-sandbox queue --json`)"
        )
    record = await resolve(store, text)
    if record is None:
        raise bad_input(f"no message with id {text}; list ids with: mail-sandbox messages")
    return record


def _describe(record: MessageRecord, content: bytes, journey: Any) -> str:
    from sandbox.auth.verdicts import verdict_lines  # authres: only `show` needs it

    lines = [
        f"Message {record.id} in {record.mailbox}/{record.folder}"
        + ("  [held: the recipient's domain is outside the sandbox]" if record.held else ""),
        f"From:     {record.from_addr or record.envelope_from or '<>'}",
        f"To:       {', '.join(record.to)}",
    ]
    if record.cc:
        lines.append(f"Cc:       {', '.join(record.cc)}")
    lines += [
        f"Subject:  {record.subject or '(no subject)'}",
        f"Date:     {record.date or '(none)'}",
        f"Size:     {human_size(record.size)}",
        "",
        readable_text(content).rstrip(),
        "",
        *verdict_lines(content),
    ]
    attachments = attachment_lines(content)
    if attachments:
        lines += ["Attachments:", *attachments, ""]
    lines += [
        "Journey:",
        *journey_lines(journey),
    ]
    return "\n".join(lines)


@click.command()
@click.option("--to", "to", metavar="ADDRESS", required=True, help="Mailbox (or @domain).")
@click.option("--from", "sender", metavar="ADDRESS", help="Sent from this address.")
@click.option("--subject", metavar="TEXT", help="Subject contains this text.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="Seconds to wait before giving up (exit 1).",
)
@click.option("--new", "only_new", is_flag=True, help="Ignore messages already stored.")
@click.option("--json", "as_json", is_flag=True, help="Print the message JSON.")
@common_options
@click.pass_context
def wait(
    ctx: click.Context,
    /,
    to: str,
    sender: str | None,
    subject: str | None,
    timeout: float,
    only_new: bool,
    as_json: bool,
    **kwargs: Any,
) -> None:
    """Block until a matching message is stored (the newest one already there counts)."""
    config = build_config(ctx, pop_common(kwargs))
    flt = MessageFilter(to=to, sender=sender, subject=subject)

    async def work(store: SqliteStore) -> MessageRecord:
        deadline = time.monotonic() + timeout
        after = await store.last_id()  # taken first, so nothing slips between the checks
        if not only_new:
            existing = await store.newest_message(flt)
            if existing is not None:
                return existing
        while True:
            found = await store.list_messages(_after(flt, after), limit=1)
            if found:
                return found[0]
            if time.monotonic() >= deadline:
                total = await store.count_messages()
                raise failure(
                    f"no message {_describe_filter(flt)} arrived within {timeout:g}s"
                    f" ({total} stored; see them with: mail-sandbox messages)"
                )
            await asyncio.sleep(POLL_SECONDS)

    async def work_and_journey(store: SqliteStore) -> tuple[MessageRecord, Any, bytes]:
        record = await work(store)
        # As the test API's wait_for: a relayed copy is stored a moment before the relay
        # records its "delivered" hop; the journey printed is the whole one.
        # (Polled, as the wait itself is: the relay may run in another process.)
        for _ in range(int(timeout / POLL_SECONDS) + 1):
            if not await relay_in_flight(store, record):
                break
            await asyncio.sleep(POLL_SECONDS)
        raw = await store.raw(record.message_id) or b""
        return record, await journey_with_copy_ids(store, record), raw

    record, journey, raw = run_with_store(config, work_and_journey, read_only=True)
    if as_json:
        click.echo(json_line(record, journey, raw, body=False))
    else:
        click.echo(table([record]))


def _after(flt: MessageFilter, after_id: int) -> MessageFilter:
    return MessageFilter(to=flt.to, sender=flt.sender, subject=flt.subject, after_id=after_id)


def _describe_filter(flt: MessageFilter) -> str:
    parts = [f"to {flt.to}"]
    if flt.sender:
        parts.append(f"from {flt.sender}")
    if flt.subject:
        parts.append(f"with subject containing {flt.subject!r}")
    return " ".join(parts)


@click.command()
@click.option(
    "--with-queue",
    is_flag=True,
    help="Also drop relay deliveries not yet made (without it they are still delivered).",
)
@common_options
@click.pass_context
def clear(ctx: click.Context, /, with_queue: bool, **kwargs: Any) -> None:
    """Delete every message copy in every mailbox (mailboxes and their UIDs stay).

    Relay deliveries still queued or deferred are kept and still delivered, so their
    messages stay in the store until then; --with-queue drops those deliveries too.
    """
    config = build_config(ctx, pop_common(kwargs))
    count = run_with_store(config, lambda store: store.clear(with_queue=with_queue))
    click.echo(f"deleted {count} message{'s' if count != 1 else ''}")
