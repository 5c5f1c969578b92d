"""``mail-sandbox links ID``: every URL in a message, for "click the link" in a shell test."""

from __future__ import annotations

from typing import Any

import click

from sandbox.cli.errors import bad_input, failure
from sandbox.cli.options import build_config, common_options, pop_common
from sandbox.cli.read import run_with_store
from sandbox.links import links_in
from sandbox.store import SqliteStore


@click.command("links")
@click.argument("message_id", metavar="ID", type=int)
@common_options
@click.pass_context
def links_command(ctx: click.Context, /, message_id: int, **kwargs: Any) -> None:
    """Print every web URL in a message, one a line, in order, each once.

    URLs come from the text and HTML parts (href and src attributes, and URLs in the
    visible text), decoded first; attachments are left out. Exits 1 when there is none.

        curl -fsS "$(mail-sandbox links 3 | grep /verify | head -1)"
    """
    config = build_config(ctx, pop_common(kwargs))

    async def work(store: SqliteStore) -> bytes:
        record = await store.get_message(message_id)
        if record is None:
            raise bad_input(
                f"no message with id {message_id}; list ids with: mail-sandbox messages"
            )
        return await store.raw(record.message_id) or b""

    urls = links_in(run_with_store(config, work))
    if not urls:
        raise failure(f"message {message_id} has no links")
    for url in urls:
        click.echo(url)
