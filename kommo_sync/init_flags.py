"""`kommo-sync init`'s flags: Kommo's, each destination's the registry offers (`--<name>-key`,
`--<name>-url`, `--<name>-<pick>`), the folder and `--yes`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from kommo_sync import setup
from kommo_sync.destinations.registry import Vendor


def _destination_options(vendor: Vendor) -> list[Callable[[Any], Any]]:
    """`--<name>-key` (or its variable), `--<name>-url` and `--<name>-<pick>` of a destination
    `init` can connect."""
    step, name = setup.step_of(vendor), vendor.name
    return [
        click.option(f"--{name}-key", f"{name}__key", envvar=step.key_env, help=step.key_help),
        click.option(f"--{name}-{step.pick}", f"{name}__pick", help=step.pick_help),
        click.option(f"--{name}-url", f"{name}__url", help=step.url_help),
    ]


def init_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Every answer `init` asks for, as a flag; the secrets may come from their variables."""
    options = [
        click.option(
            "--kommo-url", help="The Kommo account's address, like https://mycompany.kommo.com."
        ),
        click.option(
            "--kommo-token", envvar="KOMMO_TOKEN", help="Kommo long-lived token (or KOMMO_TOKEN)."
        ),
        click.option(
            "--pipeline",
            "pipelines",
            multiple=True,
            help="A pipeline to sync, by name or id (repeatable; none: all).",
        ),
        click.option(
            "--consent-field", help="Kommo checkbox field holding email consent (name or id)."
        ),
        click.option(
            "--lead-source-field", help="Kommo contact field holding the lead source (name or id)."
        ),
        *[option for vendor in setup.connectable() for option in _destination_options(vendor)],
        click.option(
            "--dir",
            "folder",
            type=click.Path(file_okay=False),
            help="Where to write both files [.].",
        ),
        click.option(
            "--yes",
            is_flag=True,
            help="Ask nothing: take the flags (and the only audience or list).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command
