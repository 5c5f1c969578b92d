"""``mail-sandbox import`` and ``mail-sandbox export``: mbox, Maildir and ``.eml``.

Both work on the data file directly; no server needs to run, and a running one sees the
imported messages at once (they are rows like any other). Long work shows a progress bar
on stderr when stderr is a terminal.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import click

from sandbox.cli.errors import bad_input, failure
from sandbox.cli.options import build_config, common_options, pop_common
from sandbox.cli.read import run_with_store
from sandbox.ingest import ingest
from sandbox.mailio import (
    ImportProblem,
    eml_name,
    from_line_of,
    mbox_entry,
    new_message,
    read_sources,
)
from sandbox.store import MessageFilter, SqliteStore

INGEST_CHUNK = 200


class _Progress(Protocol):
    def update(self, n_steps: int) -> None: ...


class _NoProgress:
    def update(self, n_steps: int) -> None:
        return None


@contextlib.contextmanager
def progress(length: int, label: str) -> Iterator[_Progress]:
    """click's progress bar on stderr when it is a terminal; nothing otherwise."""
    if not sys.stderr.isatty():
        yield _NoProgress()
        return
    with click.progressbar(length=length, label=label, file=sys.stderr) as bar:
        yield bar


@click.command("import")
@click.argument(
    "paths",
    metavar="PATH...",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, path_type=Path),
)
@click.option(
    "--mailbox",
    metavar="ADDRESS",
    help="Put every message in this mailbox (default: each To and Cc recipient's).",
)
@common_options
@click.pass_context
def import_command(
    ctx: click.Context, /, paths: tuple[Path, ...], mailbox: str | None, **kwargs: Any
) -> None:
    """Store messages from mbox files, Maildir folders and .eml files (or folders of them).

    Each message goes to the INBOX of each recipient in its To and Cc headers (or of
    --mailbox), held when the domain is not a sandbox domain. The bytes are kept
    exactly, so `export` gives the same files back.
    """
    config = build_config(ctx, pop_common(kwargs))
    if mailbox is not None and "@" not in mailbox:
        raise bad_input(f"--mailbox {mailbox!r} is not an address like name@alpha.test")
    try:
        messages = [new_message(found, config, mailbox) for found in read_sources(paths)]
    except ImportProblem as exc:
        raise bad_input(str(exc)) from None
    except OSError as exc:
        raise failure(f"cannot read {exc.filename}: {exc.strerror or exc}") from None

    async def work(store: SqliteStore) -> int:
        copies = 0
        with progress(len(messages), "importing") as bar:
            for start in range(0, len(messages), INGEST_CHUNK):
                chunk = messages[start : start + INGEST_CHUNK]
                # Started together, they share the store's group commits; the store's
                # queue keeps their order, so ids follow the files.
                pending = [asyncio.ensure_future(ingest(store, m)) for m in chunk]
                for result in await asyncio.gather(*pending):
                    copies += len(result.copies)
                bar.update(len(chunk))
        return copies

    copies = run_with_store(config, work)
    click.echo(
        f"imported {len(messages)} message{'' if len(messages) == 1 else 's'}"
        f" ({copies} mailbox cop{'y' if copies == 1 else 'ies'}) into {config.data}"
    )


@click.command("export")
@click.argument("dest", metavar="DEST", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["mbox", "eml"]),
    required=True,
    help="mbox: one file (DEST, '-' for stdout); eml: a folder with one file a message.",
)
@click.option("--to", "to", metavar="ADDRESS", help="Only this mailbox (or @domain).")
@click.option("--force", is_flag=True, help="Overwrite files that are already there.")
@common_options
@click.pass_context
def export_command(
    ctx: click.Context, /, dest: Path, fmt: str, to: str | None, force: bool, **kwargs: Any
) -> None:
    """Write stored messages, oldest first, each once (not once per mailbox copy)."""
    config = build_config(ctx, pop_common(kwargs))
    to_stdout = str(dest) == "-"
    if to_stdout and fmt != "mbox":
        raise bad_input("only --format mbox can go to stdout ('-')")
    if fmt == "mbox" and not to_stdout and dest.exists() and not force:
        raise bad_input(f"{dest} exists; pass --force to overwrite it")
    if fmt == "eml" and dest.exists() and not dest.is_dir():
        raise bad_input(f"{dest} is not a folder; --format eml writes one file a message")

    async def work(store: SqliteStore) -> list[tuple[int, bytes]]:
        records = await store.list_messages(MessageFilter(to=to))
        seen: set[int] = set()
        out: list[tuple[int, bytes]] = []
        with progress(len(records), "reading") as bar:
            for record in records:
                bar.update(1)
                if record.message_id in seen:
                    continue
                seen.add(record.message_id)
                raw = await store.raw(record.message_id) or b""
                if fmt == "mbox":
                    hops = await store.journey(record.message_id)
                    raw = mbox_entry(
                        raw, record.envelope_from, record.received_at, from_line_of(hops)
                    )
                out.append((record.id, raw))
        return out

    entries = run_with_store(config, work, read_only=True)
    try:
        if fmt == "mbox":
            _write_mbox(dest, entries, to_stdout)
        else:
            _write_eml(dest, entries, force)
    except OSError as exc:
        raise failure(f"cannot write {exc.filename or dest}: {exc.strerror or exc}") from None
    if not to_stdout:
        click.echo(f"exported {len(entries)} message{'' if len(entries) == 1 else 's'} to {dest}")


def _write_mbox(dest: Path, entries: list[tuple[int, bytes]], to_stdout: bool) -> None:
    if to_stdout:
        for _, data in entries:
            sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    with dest.open("wb") as fh, progress(len(entries), "writing") as bar:
        for _, data in entries:
            fh.write(data)
            bar.update(1)


def _write_eml(dest: Path, entries: list[tuple[int, bytes]], force: bool) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    targets = [(dest / eml_name(entry_id), data) for entry_id, data in entries]
    if not force:
        clashes = [str(path) for path, _ in targets if path.exists()]
        if clashes:
            raise bad_input(f"{clashes[0]} exists; pass --force to overwrite")
    with progress(len(targets), "writing") as bar:
        for path, data in targets:
            path.write_bytes(data)
            bar.update(1)
