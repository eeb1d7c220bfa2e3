"""Many accounts, one folder each: finding their configs (`run --accounts PATH`) and the rule
that makes one exit code of theirs. Pure: reads directory listings, runs nothing (runner.py
starts the processes)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from kommo_sync.errors import ConfigError
from kommo_sync.exits import EXIT_CONFIG, EXIT_FATAL, EXIT_LOCKED, EXIT_OK, EXIT_REJECTED

CONFIG_NAME = "sync.yaml"
# how bad each code is for the set; a locked account is only busy (its own run is on)
SEVERITY = {EXIT_OK: 0, EXIT_LOCKED: 0, EXIT_REJECTED: 1, EXIT_CONFIG: 2, EXIT_FATAL: 3}
STATUS = {
    EXIT_OK: "ok",
    EXIT_REJECTED: "rejected",
    EXIT_CONFIG: "config",
    EXIT_LOCKED: "locked",
    EXIT_FATAL: "fatal",
    130: "interrupted",
    143: "interrupted",
}


@dataclass(frozen=True)
class Account:
    """One account's config; `label` names it on the runner's lines until its own report
    names it (`account:`, else this same folder name)."""

    label: str
    config: Path


def find_accounts(paths: Iterable[str | Path]) -> list[Account]:
    """Each PATH a sync.yaml, or a folder whose subfolders each hold one (folders without one
    are skipped, as are hidden ones); in the order given, subfolders by name, each config once."""
    found: dict[Path, Account] = {}
    for given in paths:
        for config in _configs(Path(given)):
            found.setdefault(config.resolve(), Account(config.parent.resolve().name, config))
    if not found:
        raise ConfigError("--accounts", "give a folder of account folders or a sync.yaml")
    return list(found.values())


def _configs(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ConfigError("--accounts", f"{path} is neither a sync.yaml nor a folder")
    configs = [
        folder / CONFIG_NAME
        for folder in sorted(path.iterdir())
        if folder.is_dir() and not folder.name.startswith(".") and (folder / CONFIG_NAME).is_file()
    ]
    if not configs:
        raise ConfigError("--accounts", f"{path} holds no folder with a {CONFIG_NAME}")
    return configs


def status_of(exit_code: int) -> str:
    """How the table names an account's end: a code outside the contract is a crash."""
    return STATUS.get(exit_code, "crashed")


def set_exit_code(codes: Iterable[int]) -> int:
    """The worst of the accounts' codes by 4 > 2 > 1 > 0; a locked account (3) counts as 0, and
    an account that ended outside the contract (a crash, a kill) as 4."""
    worst = max((SEVERITY.get(code, SEVERITY[EXIT_FATAL]) for code in codes), default=0)
    return next(code for code, rank in SEVERITY.items() if rank == worst)
