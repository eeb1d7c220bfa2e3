"""`kommo-sync deploy kubernetes ACCOUNTS…`: print (or write) the manifests that run each account
as a Kubernetes CronJob. Renders only: nothing is applied and no secret is read."""

from __future__ import annotations

import os
from pathlib import Path

import click

from kommo_sync.cli_common import handle_errors
from kommo_sync.deploy import (
    Account,
    Options,
    account_from_folder,
    account_from_label,
    render,
    to_yaml,
)
from kommo_sync.errors import ConfigError
from kommo_sync.exits import EXIT_OK


@click.group()
def deploy() -> None:
    """Render deployment files for many accounts."""


@deploy.command()
@click.argument("accounts", nargs=-1, required=True)
@click.option(
    "--image", required=True, help="The image to run, from a registry the cluster pulls from."
)
@click.option("--schedule", default="*/15 * * * *", show_default=True, help="Cron schedule.")
@click.option("--namespace", help="Namespace of every manifest (default: kubectl's).")
@click.option(
    "--secret-prefix",
    default="kommo-sync-",
    show_default=True,
    help="Each account's Secret is <prefix><account> (KOMMO_TOKEN…, KOMMO_SYNC_STATE).",
)
@click.option("--suspend", is_flag=True, help="Render the CronJobs suspended.")
@click.option(
    "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here, not stdout."
)
@handle_errors
def kubernetes(
    accounts: tuple[str, ...],
    image: str,
    schedule: str,
    namespace: str | None,
    secret_prefix: str,
    suspend: bool,
    output: Path | None,
) -> int:
    """A CronJob per account, and a ConfigMap with its sync.yaml for each ACCOUNT given as a
    folder (one holding sync.yaml); an ACCOUNT given as a label needs its ConfigMap
    kommo-sync-<account> created by hand. Secrets are never rendered: create them."""
    options = Options(image, schedule, namespace, secret_prefix, suspend)
    text = to_yaml(render([_account(a) for a in accounts], options))
    if output is None:
        click.echo(text, nl=False)
        return EXIT_OK
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError("--output", f"cannot write {output}: {exc.strerror}") from None
    return EXIT_OK


def _account(argument: str) -> Account:
    """A folder when one exists by that name or the argument is a path, else a label."""
    path = Path(argument)
    if path.is_dir():
        return account_from_folder(path)
    if os.sep in argument or argument.startswith("."):
        raise ConfigError(argument, "no such folder (give a folder holding sync.yaml)")
    return account_from_label(argument)
