"""`kommo-sync init`: a first sync.yaml and env file, from answers asked or given as flags.

The accounts are read with the given credentials (GETs only: the same readers as `check`), so
the user picks pipelines, fields, the audience and the list from what is there rather than typing
ids. Every answer is validated by the config's own checks before anything is written; the
config holds `${VAR}` references only, the secrets go to an env file created with mode 0600, and
neither file is ever overwritten.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import yaml

from kommo_sync import checks
from kommo_sync.checklist import Check, Failed, Named, vendor_failures
from kommo_sync.clock import Clock
from kommo_sync.config import Config, parse_config
from kommo_sync.destinations import registry
from kommo_sync.destinations.registry import InitStep, Vendor
from kommo_sync.errors import ConfigError
from kommo_sync.pipelines import closest
from kommo_sync.setup_files import CONFIG_NAME, ENV_NAME, STATE_NAME, render, write_files

TIMEOUT = 60.0
Say = Callable[[str], None]


@dataclass(frozen=True)
class DestinationAnswers:
    """A destination's flags: its key, its API address, the item picked (audience, list)."""

    key: str | None = None
    url: str | None = None
    pick: str | None = None


@dataclass
class Answers:
    """What the flags gave; None (or empty) is asked, unless `yes` says ask nothing."""

    folder: str | None = None
    kommo_url: str | None = None
    kommo_token: str | None = None
    pipelines: tuple[str, ...] = ()
    consent_field: str | None = None
    lead_source_field: str | None = None
    destinations: dict[str, DestinationAnswers] = field(default_factory=dict)
    yes: bool = False

    @property
    def secrets(self) -> tuple[str, ...]:
        forms = [self.kommo_token or ""]
        for vendor in connectable():
            key = self.destination(vendor.name).key
            forms += step_of(vendor).secret_forms(key) if key else []
        return tuple(sorted({f for f in forms if f}, key=len, reverse=True))

    def destination(self, name: str) -> DestinationAnswers:
        return self.destinations.get(name) or DestinationAnswers()


class Asker:
    """Asks on the terminal, or (with --yes) never: a required answer missing is then an error."""

    def __init__(self, interactive: bool, say: Say):
        self.interactive, self.say = interactive, say

    def text(self, question: str, flag: str, default: str | None = None, hide: bool = False) -> str:
        """An answer; `default` None makes it required."""
        if not self.interactive:
            if default is None:
                raise ConfigError(flag, "required with --yes (without it, init asks)")
            return default
        try:
            return str(
                click.prompt(question, default=default, hide_input=hide, show_default=bool(default))
            )
        except click.Abort:
            raise ConfigError(
                flag, "no answer: give it as a flag (with --yes, nothing is asked)"
            ) from None

    def confirm(self, question: str) -> bool:
        return not self.interactive or click.confirm(question, default=True)


@dataclass
class Draft:
    """The config being built: YAML sections (secrets as ${VAR}), the secrets themselves, and what
    the accounts listed, for the comments."""

    sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    comments: dict[str, str] = field(default_factory=dict)
    picked: dict[str, tuple[Named, list[Named]]] = field(default_factory=dict)

    def add(self, section: str, secret: str, base_url: str | None) -> None:
        key, variable = _secret_of(section)
        if "\n" in secret or secret != secret.strip():
            raise ConfigError(
                flags()[f"{section}.{key}"], "holds a line break or surrounding spaces"
            )
        self.secrets[variable] = secret
        self.sections[section] = {
            **({"base_url": base_url} if base_url else {}),
            key: f"${{{variable}}}",
        }

    def config(self, folder: Path, **placeholders: dict[str, Any]) -> Config:
        """The typed config, checked by the config's own rules (errors name the flag);
        `placeholders` stand for what is not picked yet (the audience being listed)."""
        raw = {
            name: {**values, **placeholders.get(name, {})} for name, values in self.sections.items()
        }
        with flag_names():
            return parse_config({"state": STATE_NAME, **raw}, self.secrets, base_dir=folder)


@contextmanager
def flag_names() -> Iterator[None]:
    """Config keys and vendor checks named by the flag that gave them."""
    try:
        yield
    except ConfigError as exc:
        raise ConfigError(_flag(exc.key), exc.problem) from None
    except Failed as failed:
        check = failed.check
        raise Failed(Check(_flag(check.key), check.message, check.exit_code)) from None


def _flag(key: str) -> str:
    return "--pipeline" if key.startswith("kommo.pipelines") else flags().get(key, key)


def _secret_of(section: str) -> tuple[str, str]:
    """The section's secret key and the variable init keeps it in."""
    if section == "kommo":
        return "token", "KOMMO_TOKEN"
    return "api_key", step_of(registry.vendors_by_name()[section]).key_env


def run_init(given: Answers, clock: Clock, say: Say) -> int:
    """Ask, read the accounts, write both files; raises ConfigError or Failed naming a flag."""
    ask = Asker(not given.yes, say)
    folder = Path(given.folder or ask.text("Folder for sync.yaml and the env file", "--dir", "."))
    targets = refuse_existing(folder)
    draft = Draft()
    _kommo(given, ask, draft, folder, clock)
    for vendor in connectable():
        _destination(vendor, given.destination(vendor.name), ask, draft, folder, clock)
    text = render(draft)
    _loads(text, draft.secrets, folder)
    if not ask.confirm(f"Write {targets[0]} and {targets[1]}?"):
        say("Nothing written.")
        return 0
    write_files(targets, text, draft.secrets)
    say(f"Wrote {targets[0]} and {targets[1]} (mode 0600, the secrets). Next:")
    say(f"  kommo-sync --config {targets[0]} check")
    say(f"  kommo-sync --config {targets[0]} run --dry-run")
    return 0


def _loads(text: str, secrets: dict[str, str], folder: Path) -> None:
    """What is about to be written loads (the env file, not written yet, stands aside)."""
    raw = yaml.safe_load(text)
    raw.pop("env_file")
    parse_config(raw, secrets, base_dir=folder)


def refuse_existing(folder: Path) -> tuple[Path, Path]:
    """Both paths init writes, refused before a question is asked when either exists."""
    targets = (folder / CONFIG_NAME, folder / ENV_NAME)
    for path in targets:
        if path.exists():
            raise ConfigError(
                "--dir",
                f"{path} exists: init never overwrites a file; move it away or "
                "choose another --dir",
            )
    return targets


# picking from what the accounts hold -------------------------------------------------------------
def show(say: Say, title: str, options: Sequence[Named]) -> None:
    say(f"{title}:")
    for number, option in enumerate(options, start=1):
        say(f"  {number}) {option.label()}" + (f", {option.detail}" if option.detail else ""))


def match(
    value: str, options: Sequence[Named], what: str, flag: str, numbered: bool = False
) -> Named:
    """The option a flag or an answer names: by number (answers only), id, web id or name."""
    value = value.strip()
    if numbered and value.isdigit() and 1 <= int(value) <= len(options):
        return options[int(value) - 1]
    for option in options:
        if value in (str(option.id), option.name, option.web_id):
            return option
    hint = closest(value, [o.name for o in options], f"{what}s")
    raise ConfigError(flag, f"no {what} {value!r}{hint}")


def pick_required(
    ask: Asker, given: str | None, options: Sequence[Named], what: str, flag: str, question: str
) -> Named:
    """One option: the flag's, else asked; with --yes, the only one there is."""
    if given:
        return match(given, options, what, flag)
    if not options:
        raise ConfigError(flag, f"the account has no {what}: create one first")
    if not ask.interactive:
        if len(options) == 1:
            return options[0]
        listed = ", ".join(o.label() for o in options)
        raise ConfigError(
            flag, f"required with --yes: the account has {len(options)} {what}s: {listed}"
        )
    answer = ask.text(
        f"{question} (a number, name or id)", flag, "1" if len(options) == 1 else None
    )
    return match(answer, options, what, flag, numbered=True)


def pick_optional(
    ask: Asker, given: str | None, options: Sequence[Named], what: str, flag: str, question: str
) -> Named | None:
    """The flag's option, else asked (empty: none); with --yes, none."""
    if given:
        return match(given, options, what, flag)
    if not ask.interactive:
        return None
    answer = ask.text(f"{question} (a number, name or id; empty: none)", flag, "")
    return match(answer, options, what, flag, numbered=True) if answer.strip() else None


# Kommo -------------------------------------------------------------------------------------------
def _kommo(given: Answers, ask: Asker, draft: Draft, folder: Path, clock: Clock) -> None:
    url = given.kommo_url or ask.text(
        "Kommo account address (like https://mycompany.kommo.com)", "--kommo-url"
    )
    token = given.kommo_token or ask.text("Kommo long-lived token", "--kommo-token", hide=True)
    draft.add("kommo", token, url)
    with flag_names():
        catalog, fields = checks.kommo_account(
            draft.config(folder).kommo, clock, TIMEOUT, "nothing written"
        )
    pipelines = [
        Named(p.id, p.name) for p in sorted(catalog.pipelines.values(), key=lambda p: p.name)
    ]
    picked = _pipelines(given, ask, pipelines)
    draft.sections["kommo"]["pipelines"] = [p.name for p in picked]
    draft.comments["pipelines"] = ", ".join(f"{p.name!r} (id {p.id})" for p in pipelines)
    custom = [
        Named(f["id"], f.get("name") or "", f.get("type") or "")
        for f in fields
        if not f.get("code")
    ]
    _fields(given, ask, draft, custom)


def _pipelines(given: Answers, ask: Asker, pipelines: list[Named]) -> list[Named]:
    if given.pipelines:
        return [match(value, pipelines, "pipeline", "--pipeline") for value in given.pipelines]
    if not ask.interactive:
        return []
    show(ask.say, "Kommo pipelines", pipelines)
    answer = ask.text(
        "Pipelines to sync (numbers, names or ids, comma-separated; empty: all)", "--pipeline", ""
    )
    return [
        match(part, pipelines, "pipeline", "--pipeline", numbered=True)
        for part in answer.split(",")
        if part.strip()
    ]


def _fields(given: Answers, ask: Asker, draft: Draft, custom: list[Named]) -> None:
    """The consent checkbox and the lead-source field, both optional."""
    boxes = [Named(f.id, f.name) for f in custom if f.detail == "checkbox"]
    others = [f for f in custom if f.detail != "checkbox"]
    if ask.interactive and not given.consent_field:
        show(ask.say, "Kommo checkbox fields", boxes)
    consent = pick_optional(
        ask,
        given.consent_field,
        boxes,
        "checkbox field",
        "--consent-field",
        "Consent checkbox (without one, consent is not tracked)",
    )
    if ask.interactive and not given.lead_source_field:
        show(ask.say, "Kommo contact fields", others)
    source = pick_optional(
        ask,
        given.lead_source_field,
        others,
        "contact field",
        "--lead-source-field",
        "Lead source field",
    )
    kommo = draft.sections["kommo"]
    if consent:
        kommo["consent_field"] = consent.name
    if source:
        kommo["lead_source_field"] = source.name
    draft.comments["boxes"] = ", ".join(repr(b.name) for b in boxes) or "none"


# destinations ----------------------------------------------------------------------------------
def _destination(
    vendor: Vendor, given: DestinationAnswers, ask: Asker, draft: Draft, folder: Path, clock: Clock
) -> None:
    """A destination's key (empty: not connected), then the item every person joins, picked from
    what the account lists."""
    step, name = step_of(vendor), vendor.name
    key_flag, pick_flag = f"--{name}-key", f"--{name}-{step.pick}"
    key = given.key or ask.text(
        f"{step.key_prompt} (empty: no {step.title})", key_flag, "", hide=True
    )
    if not key:
        if given.pick:
            raise ConfigError(pick_flag, f"needs {key_flag}")
        return
    draft.add(name, key, given.url)
    section = draft.config(folder, **{name: {step.pick_key: "-"}}).destinations[name]
    with flag_names(), vendor_failures(name, "api_key", "nothing written"):
        listed = step.listing(section, clock, TIMEOUT)
    if ask.interactive and not given.pick:
        show(ask.say, f"{step.title} {step.pick}s", listed)
    chosen = pick_required(ask, given.pick, listed, step.pick, pick_flag, step.question)
    draft.sections[name][step.pick_key] = str(chosen.id)
    draft.picked[name] = (chosen, listed)


def step_of(vendor: Vendor) -> InitStep:
    assert vendor.init is not None  # only vendors with an init step are offered
    return vendor.init


def answers(given: dict[str, Any]) -> Answers:
    """The flags click parsed: a destination's come as `<name>__key`, `<name>__url` and
    `<name>__pick`."""
    plain = {k: v for k, v in given.items() if "__" not in k}
    by_name: dict[str, dict[str, Any]] = {}
    for flag, value in given.items():
        if "__" in flag:
            name, part = flag.split("__", 1)
            by_name.setdefault(name, {})[part] = value
    destinations = {name: DestinationAnswers(**parts) for name, parts in by_name.items()}
    return Answers(**plain, destinations=destinations)


def connectable() -> list[Vendor]:
    """The registered destinations `init` can connect, in registry order."""
    return [vendor for vendor in registry.vendors() if vendor.init is not None]


def flags() -> dict[str, str]:
    """Config key → the `init` flag that gives it (errors are named by the flag)."""
    found = {"kommo.base_url": "--kommo-url", "kommo.token": "--kommo-token"}
    for vendor in connectable():
        step, name = step_of(vendor), vendor.name
        found[f"{name}.api_key"] = f"--{name}-key"
        found[f"{name}.base_url"] = f"--{name}-url"
        found[f"{name}.{step.pick_key}"] = f"--{name}-{step.pick}"
    return found
