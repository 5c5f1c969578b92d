"""``mail-sandbox links ID``: every URL in a message, for "click the link" in a shell test."""

from __future__ import annotations

from typing import Any

import click

from sandbox.cli.errors import failure
from sandbox.cli.options import build_config, common_options, pop_common
from sandbox.cli.read import find_message, run_with_store
from sandbox.links import links_in
from sandbox.store import SqliteStore


@click.command("links")
@click.argument("message_id", metavar="ID")
@common_options
@click.pass_context
def links_command(ctx: click.Context, /, message_id: str, **kwargs: Any) -> None:
    """Print every web URL in a message, one a line, in order, each once.

    ID is a copy id as `messages` lists, or mN (see `show --help`). URLs come from the
    text and HTML parts (href and src attributes, and URLs in the visible text), decoded
    first; attachments are left out. Exits 1 when there is none.

        curl -fsS "$(mail-sandbox links 3 | grep /verify | head -1)"
    """
    config = build_config(ctx, pop_common(kwargs))

    async def work(store: SqliteStore) -> bytes:
        record = await find_message(store, message_id)
        return await store.raw(record.message_id) or b""

    urls = links_in(run_with_store(config, work, read_only=True))
    if not urls:
        raise failure(f"message {message_id} has no links")
    for url in urls:
        click.echo(url)
