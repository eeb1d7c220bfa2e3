"""`kommo-sync sandbox`: the Kommo, Mailchimp and Klaviyo sandboxes on loopback, seeded like the
demo, served on the wall clock until SIGINT or SIGTERM, with a ready sync.yaml and env file in a
folder, so every command (`check`, `run`, `status`, `backfill`) can be tried without accounts.

The files point at ports that live only as long as this process, so on stop they are removed
with the state a run kept beside them; the sandbox never overwrites a file that was there.
"""

from __future__ import annotations

import os
import shlex
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import yaml

from kommo_sync.clock import Clock, StopFlag
from kommo_sync.demo import DEMO_ENV, DemoWorld
from kommo_sync.errors import ConfigError
from kommo_sync.signals import stop_on_signals

CONFIG_NAME, ENV_NAME, STATE_NAME = "sync.yaml", "kommo-sync.env", "kommo-sync.db"
STATE_COMPANIONS = ("-wal", "-shm", ".lock")  # SQLite's WAL files and the run lock beside the state
POLL_SECONDS = 0.1
BACKFILL_DAYS = 30
Say = Callable[[str], None]


def serve(folder: Path | None, contacts: int, say: Say) -> int:
    """Serve until a signal asks to stop; exit 0 (stopping is how a sandbox ends)."""
    made = folder is None
    folder = Path(tempfile.mkdtemp(prefix="kommo-sync-sandbox-")) if folder is None else folder
    paths = _owned(folder)
    _refuse_existing(paths)
    folder.mkdir(parents=True, exist_ok=True)
    stop = StopFlag()
    with stop_on_signals(stop):
        say(f"Seeding {contacts} Kommo contacts…")
        world = DemoWorld(Clock(), contacts, folder)
        try:
            _write(folder, world)
            _tell(say, folder, world)
            while not stop.requested:
                time.sleep(POLL_SECONDS)
        finally:
            world.stop()
            _remove(paths, folder if made else None)
    say("Sandboxes stopped; their files are removed.")
    return 0


def _owned(folder: Path) -> list[Path]:
    """Every file the sandbox writes, or its config makes a run write."""
    state = folder / STATE_NAME
    return [
        folder / CONFIG_NAME,
        folder / ENV_NAME,
        state,
        *[state.with_name(state.name + suffix) for suffix in STATE_COMPANIONS],
    ]


def _refuse_existing(paths: list[Path]) -> None:
    for path in paths:
        if path.exists():
            raise ConfigError(
                "--dir",
                f"{path} exists: the sandbox never overwrites a file; remove it or "
                "choose another --dir",
            )


def _remove(paths: list[Path], folder: Path | None) -> None:
    """Our files only; a folder we made goes too when nothing else landed in it."""
    for path in paths:
        path.unlink(missing_ok=True)
    if folder is not None and not any(folder.iterdir()):
        folder.rmdir()


def sandbox_config(world: DemoWorld) -> dict[str, Any]:
    """The config aimed at the served sandboxes (secrets as ${VAR}, read from the env file)."""
    kommo, mailchimp, klaviyo = (server.url for server in world.servers)
    return {
        "env_file": ENV_NAME,
        "kommo": {
            "base_url": kommo,
            "token": "${KOMMO_TOKEN}",
            "consent_field": "Email consent",
            "lead_source_field": "Lead source",
        },
        "state": STATE_NAME,
        "mailchimp": {
            "api_key": "${MAILCHIMP_API_KEY}",
            "base_url": mailchimp + "/3.0",
            "list_id": world.list_id,
        },
        "klaviyo": {
            "api_key": "${KLAVIYO_API_KEY}",
            "base_url": klaviyo,
            "list_id": world.crm_leads,
            "lists_by_stage": {"won": world.customers},
            "phone_region": "DE",
        },
        "feedback": {"activity": True},
        "network": {"first_poll_seconds": 1},
    }


def _write(folder: Path, world: DemoWorld) -> None:
    """The env file first (0600 from its creation), the config last: a ready config means both."""
    secrets = "".join(f"{name}={value}\n" for name, value in DEMO_ENV.items())
    _create(folder / ENV_NAME, "# the sandbox tokens (kommo-sync sandbox)\n" + secrets, 0o600)
    header = (
        "# kommo-sync configuration for the local sandboxes of `kommo-sync sandbox`, removed when"
        " it\n# stops. Sandbox bulk jobs finish in about 2 s, hence the quick first poll.\n"
    )
    _create(
        folder / CONFIG_NAME, header + yaml.safe_dump(sandbox_config(world), sort_keys=False), 0o644
    )


def _create(path: Path, text: str, mode: int) -> None:
    """Written beside, then renamed: a reader never sees half a file."""
    partial = path.with_name(f".{path.name}.partial")
    partial.unlink(missing_ok=True)  # left by a sandbox killed while writing
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(partial, path)


def _tell(say: Say, folder: Path, world: DemoWorld) -> None:
    kommo, mailchimp, klaviyo = (server.url for server in world.servers)
    say(
        "Kommo, Mailchimp and Klaviyo sandboxes on loopback, seeded with "
        f"{len(world.info.contact_ids)} contacts:"
    )
    say(f"  Kommo      {kommo}  (pipelines 'Sales', 'Partners')")
    say(f"  Mailchimp  {mailchimp}/3.0  (audience 'CRM contacts')")
    say(f"  Klaviyo    {klaviyo}  (lists 'CRM Leads', 'Customers')")
    say(
        f"Wrote {folder / CONFIG_NAME} and {folder / ENV_NAME} (mode 0600: the sandbox tokens). "
        "Try, in another terminal:"
    )
    prefix = "kommo-sync " + " ".join(
        shlex.quote(str(part))
        for part in ("--config", folder / CONFIG_NAME, "--env-file", folder / ENV_NAME)
    )
    since = (date.today() - timedelta(days=BACKFILL_DAYS)).isoformat()
    for command in ("check", "run", "status", f"backfill --since {since}"):
        say(f"  {prefix} {command}")
    say("Stop with Ctrl-C or SIGTERM; these files are removed then.")
