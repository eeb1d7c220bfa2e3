"""sync.yaml → typed, validated config. Every error names the key path and what is wrong; the
local setup checks (URL shapes and https) run here, before any request; each destination's
section is parsed by its own registered parser. The typed getters and ${VAR} secrets live in
config_reader."""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from kommo_sync.config_reader import (
    SecretLookup,
    Section,
    did_you_mean,
    name_or_id,
    origin,
    parse_moment,
    read_env_file,
    reason_of,
)
from kommo_sync.destinations import registry
from kommo_sync.errors import ConfigError
from kommo_sync.model import Stage
from kommo_sync.state.location import StateLocation
from kommo_sync.state.postgres import is_postgres_url, url_secrets
from kommo_sync.token_cipher import KEY_HINT, TokenCipher

__all__ = [
    "AlertsConfig",
    "Config",
    "alerts_despite",
    "load_config",
    "parse_alerts",
    "parse_config",
    "parse_moment",
]

DEFAULT_TAGS = {
    Stage.NEW: "New Lead",
    Stage.IN_PROGRESS: "In Progress",
    Stage.WON: "Customer",
    Stage.LOST: "Lost Lead",
}
KOMMO_SECRETS = (
    ("kommo", "token"),
    ("kommo.oauth", "client_secret"),
    ("kommo.oauth", "refresh_token"),
    ("alerts", "webhook"),
    ("alerts", "ping_url"),
)
ALERT_EVENTS = ("failure", "recovery", "rejections")
SECRET_PATH_MIN = 16  # a URL path this long is a secret of its own (a ping UUID, a Slack hook)
READABLE_BY_OTHERS = 0o044
TOKEN_KEY_ENV = "KOMMO_SYNC_TOKEN_KEY"
ACCOUNT_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


@dataclass(frozen=True)
class OAuthConfig:
    """`kommo.oauth`: an OAuth integration's keys; `refresh_token` is the one a human got when
    authorising (the rotated ones are kept in `token_store`: a file beside the config, or with
    `in_state` the state file itself, encrypted with `token_key`)."""

    client_id: str
    client_secret: str = field(repr=False)
    redirect_uri: str
    refresh_token: str = field(repr=False)
    token_store: Path
    in_state: bool = False  # `token_store: state`
    state: StateLocation | None = None  # where the state is, when the tokens are kept in it
    token_key: str = field(default="", repr=False)  # the Fernet key when in the state
    token_key_env: str = TOKEN_KEY_ENV  # the variable it came from, for messages


@dataclass(frozen=True)
class KommoConfig:
    base_url: str
    token: str  # the long-lived token; "" when `oauth` is set
    consent_field: str | int | None = None
    lead_source_field: str | int | None = None
    pipelines: tuple[str | int, ...] = ()
    requests_per_second: float = 6.3
    overlap_seconds: int = 300
    oauth: OAuthConfig | None = None
    pacing_key: str = field(default_factory=lambda: f"host:{socket.gethostname()}")
    pacing_file: Path | None = None  # None: the per-user, per-host default (shared_pacing.py)
    # a Postgres state's database (its libpq URL): the pace is kept there, shared across hosts
    pacing_url: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class FeedbackConfig:
    unsubscribes: bool = True
    activity: bool = False
    note_on_open_deals: bool = True
    consent_field_write: bool = False


@dataclass(frozen=True)
class NetworkConfig:
    """How long one HTTP request may take, when a vendor's bulk job is first polled, and how long
    a job is waited for before its records are held back for the next run."""

    timeout_seconds: float = 60.0
    first_poll_seconds: float = 5.0
    job_limit_seconds: float = 600.0


@dataclass(frozen=True)
class AlertsConfig:
    """`alerts:`: a webhook told of failures, recoveries and new rejections, and a
    healthchecks-style ping URL; both URLs are secrets (their paths are the credential)."""

    webhook: str | None = field(default=None, repr=False)
    format: str = "json"
    on: frozenset[str] = frozenset(ALERT_EVENTS)
    ping_url: str | None = field(default=None, repr=False)
    timeout_seconds: float = 5.0

    def secrets(self) -> list[str]:
        """Each URL, and its path when long enough to be a secret on its own."""
        urls = [url for url in (self.webhook, self.ping_url) if url]
        paths = [urlsplit(url).path for url in urls]
        return urls + [path for path in paths if len(path) >= SECRET_PATH_MIN]


@dataclass(frozen=True)
class Config:
    kommo: KommoConfig
    state: Path
    tags: Mapping[Stage, str] = field(default_factory=lambda: dict(DEFAULT_TAGS))
    destinations: Mapping[str, Any] = field(default_factory=dict)
    feedback: FeedbackConfig = field(default_factory=FeedbackConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    warnings: tuple[str, ...] = field(default=(), compare=False)
    forget_key: str | None = field(default=None, repr=False)  # privacy.forget_key (HMAC key)
    account: str = "default"  # the label on logs, JSON, metrics and alerts (`account:`)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    # `state: postgresql://…`: the state in PostgreSQL (kommo_sync.state.postgres); `state` then
    # names only the folder files beside the state go to
    state_url: str | None = field(default=None, repr=False)

    def __getattr__(self, name: str) -> Any:
        """`config.<vendor>`: a registered destination's section, None when it is not
        configured (callers and tests read `config.mailchimp`; core code never names one)."""
        if name.startswith("_") or name not in registry.names():
            raise AttributeError(name)
        return self.destinations.get(name)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every secret value in every form it travels in (each section lists its own), longest
        first, so scrubbing masks it whole."""
        values = [self.kommo.token, self.forget_key or "", *url_secrets(self.state_url)]
        if self.kommo.oauth is not None:
            oauth = self.kommo.oauth
            values += [oauth.client_secret, oauth.refresh_token, oauth.token_key]
        for section in self.destinations.values():
            values += section.secrets()
        values += self.alerts.secrets()
        return tuple(sorted({v for v in values if v}, key=lambda v: (-len(v), v)))


def load_config(
    path: str | Path, environ: Mapping[str, str] | None = None, env_file: str | Path | None = None
) -> Config:
    """Read, interpolate and validate a sync.yaml file; `env_file` (--env-file) replaces the
    config's own `env_file:`."""
    path = Path(path)
    raw = read_yaml(path)
    config = parse_config(
        raw,
        os.environ if environ is None else environ,
        base_dir=path.parent,
        env_file=Path(env_file) if env_file else None,
    )
    if _literal_secrets(Section(raw, "", {})) and _readable_by_others(path):
        return replace(
            config, warnings=config.warnings + (_mode_warning(path, "holds a secret and is"),)
        )
    return config


def read_yaml(path: Path) -> Any:
    """The parsed YAML tree of a config file, its ${VAR} references left as they are."""
    if not path.exists():
        raise ConfigError("--config", f"file {path} not found (create it from sync.yaml.example)")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), f"not valid YAML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("--config", f"cannot read {path}: {reason_of(exc)}") from None


def account_of(raw: Any, base_dir: Path) -> str:
    """The account label of a parsed config in `base_dir`, without resolving its secrets
    (`deploy` renders manifests where the secrets are not)."""
    return _account(Section(raw, "", {}), base_dir)


def alerts_despite(
    path: str | Path, env_file: str | Path | None = None
) -> tuple[str, AlertsConfig] | None:
    """The account and `alerts:` of a config that failed to load, when they parse on their own
    (their ${VAR}s resolved alone): a broken config still alerts. None when they do not."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(raw, dict) or not raw.get("alerts"):
            return None
        part = {key: raw[key] for key in ("account", "alerts", "env_file") if key in raw}
        given = Path(env_file) if env_file else None
        values, _ = _resolve_secrets(part, os.environ, path.parent, given)
        root = Section(part, "", values)
        return _account(root, path.parent), parse_alerts(root.section("alerts"))
    except (ConfigError, OSError, UnicodeDecodeError, yaml.YAMLError):
        return None


def parse_config(
    raw: Any, environ: Mapping[str, str], base_dir: Path = Path("."), env_file: Path | None = None
) -> Config:
    """Validate the parsed YAML tree into a Config, its ${VAR} references resolved first."""
    values, warnings = _resolve_secrets(raw, environ, base_dir, env_file)
    root = Section(raw, "", values)
    root.only(
        "account", "kommo", "tags", "state", *registry.names(), "feedback", "network",
        "env_file", "privacy", "alerts",
    )  # fmt: skip
    state_text = root.text("state", "./kommo-sync.db")
    state_url = state_text if is_postgres_url(state_text) else None
    state = Path("kommo-sync.db" if state_url else state_text)
    account = _account(root, base_dir)
    location = StateLocation.of(base_dir / state, state_url, account)
    return Config(
        account=account,
        kommo=_kommo(root.section("kommo"), base_dir, location, environ, account),
        state=base_dir / state,
        state_url=state_url,
        tags=_tags(root.section("tags", required=False)),
        destinations={
            v.name: v.parse(root.section(v.name)) for v in registry.vendors() if root.has(v.name)
        },
        feedback=_feedback(root.section("feedback", required=False)),
        network=_network(root.section("network", required=False)),
        forget_key=_forget_key(root.section("privacy", required=False)),
        alerts=parse_alerts(root.section("alerts", required=False)),
        warnings=warnings + _literal_secret_warnings(root),
    )


def _resolve_secrets(
    raw: Any, environ: Mapping[str, str], base_dir: Path, env_file: Path | None
) -> tuple[dict[str, str], tuple[str, ...]]:
    """The ${VAR} values, and a warning when the env file they may come from is not private."""
    key = "--env-file"
    if env_file is None and isinstance(raw, dict) and raw.get("env_file"):
        key, env_file = "env_file", base_dir / str(raw["env_file"])
    if env_file is None:
        return SecretLookup(environ, {}, None).resolve(raw), ()
    lookup = SecretLookup(environ, read_env_file(env_file, key), str(env_file))
    warnings = (_mode_warning(env_file, "is"),) if _readable_by_others(env_file) else ()
    return lookup.resolve(raw), warnings


def _readable_by_others(path: Path) -> bool:
    return bool(path.stat().st_mode & READABLE_BY_OTHERS)


def _mode_warning(path: Path, what: str) -> str:
    mode = path.stat().st_mode & 0o777
    return f"warning: {path} {what} readable by group or others (mode {mode:04o}): chmod 600 {path}"


def _literal_secrets(root: Section) -> list[str]:
    """The secret keys whose value is written out in the config rather than a ${VAR}."""
    return [
        f"{section}.{name}"
        for section, name in _secret_keys()
        if (s := _nested(root, section)) is not None and s.is_literal(name)
    ]


def _nested(root: Section, dotted: str) -> Section | None:
    """The section at a dotted path, None when any part is absent."""
    section = root
    for part in dotted.split("."):
        if not section.has(part):
            return None
        section = section.section(part)
    return section


def _secret_keys() -> list[tuple[str, str]]:
    vendors = registry.vendors()
    return [*KOMMO_SECRETS, *((v.name, key) for v in vendors for key in v.secret_keys)]


def _literal_secret_warnings(root: Section) -> tuple[str, ...]:
    literal = _literal_secrets(root)
    if not literal:
        return ()
    return (
        f"warning: {', '.join(literal)}: the secret is written in the config itself; "
        "write ${VAR} there and keep the value in the environment, a VAR_FILE or an env file "
        "(mode 0600)",
    )


def _network(s: Section) -> NetworkConfig:
    s.only("timeout_seconds", "first_poll_seconds", "job_limit_seconds")
    return NetworkConfig(
        timeout_seconds=s.number("timeout_seconds", 60, low=0.05, high=600),
        first_poll_seconds=s.number("first_poll_seconds", 5, low=0.01, high=60),
        job_limit_seconds=s.number("job_limit_seconds", 600, low=1, high=86_400),
    )


def _kommo(
    s: Section, base_dir: Path, state: StateLocation, environ: Mapping[str, str], account: str
) -> KommoConfig:
    s.only(
        "base_url",
        "token",
        "consent_field",
        "lead_source_field",
        "pipelines",
        "requests_per_second",
        "overlap_seconds",
        "oauth",
        "pacing_key",
        "pacing_file",
    )
    _one_auth(s)
    return KommoConfig(
        base_url=_kommo_url(s),
        token=s.text("token") if not s.has("oauth") else "",
        oauth=_oauth(s.section("oauth"), base_dir, state, environ) if s.has("oauth") else None,
        consent_field=s.name_or_id("consent_field"),
        lead_source_field=s.name_or_id("lead_source_field"),
        pipelines=tuple(s.items("pipelines", name_or_id)),
        requests_per_second=s.number("requests_per_second", 6.3, low=0.1, high=7.0),
        overlap_seconds=int(s.number("overlap_seconds", 300, low=0, high=86400)),
        pacing_key=_pacing_key(s, account),
        pacing_url=state.pg.url if state.pg else None,
        pacing_file=base_dir / s.text("pacing_file") if s.has("pacing_file") else None,
    )


def _pacing_key(s: Section, account: str) -> str:
    """Whose requests share one Kommo pace: `host` (this machine's, i.e. its egress IP: the
    default), `account` (the config's account), or a group name several configs give."""
    choice = s.text("pacing_key", "host")
    if choice == "host":
        return f"host:{socket.gethostname()}"
    if choice == "account":
        return f"account:{account}"
    if not ACCOUNT_LABEL.fullmatch(choice):
        raise ConfigError(
            s.key("pacing_key"),
            f"{choice!r}: use host, account, or a group name of letters, digits, '.', '_' or '-'",
        )
    return f"group:{choice}"


def _one_auth(s: Section) -> None:
    """Exactly one of `kommo.token` (a long-lived token) and `kommo.oauth` (an integration)."""
    if s.has("token") and s.has("oauth"):
        raise ConfigError(s.key("oauth"), "give either kommo.token or kommo.oauth, not both")
    if not s.has("token") and not s.has("oauth"):
        raise ConfigError(
            s.key("token"), "required: a long-lived token, or a kommo.oauth section instead"
        )


def _oauth(
    s: Section, base_dir: Path, state: StateLocation, environ: Mapping[str, str]
) -> OAuthConfig:
    """`token_store` (a relative path is resolved beside the config) defaults to
    `<state file>.kommo-token` beside the state: the rotated token lives with the run's memory;
    `state` keeps it in the state itself, encrypted (for pods without a volume)."""
    s.only(
        "client_id", "client_secret", "redirect_uri", "refresh_token", "token_store",
        "token_key_env",
    )  # fmt: skip
    given = s.optional_text("token_store")
    in_state = given == "state"
    if s.has("token_key_env") and not in_state:
        raise ConfigError(s.key("token_key_env"), "only with token_store: state")
    variable = s.optional_text("token_key_env") or TOKEN_KEY_ENV
    return OAuthConfig(
        client_id=s.text("client_id"),
        client_secret=s.text("client_secret"),
        redirect_uri=s.text("redirect_uri"),
        refresh_token=s.text("refresh_token"),
        token_store=_token_store(given, base_dir, state.path),
        in_state=in_state,
        state=state if in_state else None,
        token_key=_token_key(s.key("token_store"), variable, environ) if in_state else "",
        token_key_env=variable,
    )


def _token_store(given: str | None, base_dir: Path, state: Path) -> Path:
    if given == "state":
        return state
    return base_dir / given if given else state.with_name(f"{state.name}.kommo-token")


def _token_key(where: str, variable: str, environ: Mapping[str, str]) -> str:
    """The Fernet key of `token_store: state`, from the variable `token_key_env` names; checked
    here so a missing or malformed one stops the run before any request."""
    key = environ.get(variable, "").strip()
    if not key:
        raise ConfigError(where, f"state needs a key: set ${variable} to {KEY_HINT}")
    TokenCipher(key, variable, where)
    return key


def _kommo_url(s: Section) -> str:
    """The account's address: the client adds /api/v4 itself."""
    parts = s.url("base_url", None, carries="the token")
    if parts.path or parts.query or parts.fragment:
        what = "/api/v4" if parts.path.rstrip("/").endswith("/api/v4") else "a path"
        raise ConfigError(
            s.key("base_url"), f"give the account's address without {what}, like {origin(parts)}"
        )
    return parts.geturl()


def _account(root: Section, base_dir: Path) -> str:
    """`account:`, else the name of the folder holding the config (one folder per account),
    made a label (characters outside ACCOUNT_LABEL become '-')."""
    name = root.optional_text("account")
    if name is None:
        folder = re.sub(r"[^A-Za-z0-9._-]+", "-", base_dir.resolve().name).strip("-._")
        return folder[:63] or "default"
    if not ACCOUNT_LABEL.fullmatch(name):
        raise ConfigError(
            "account", f"{name!r}: use letters, digits, '.', '_' or '-' (at most 63), like acme-co"
        )
    return name


def _tags(s: Section) -> dict[Stage, str]:
    s.only(*[stage.value for stage in Stage])
    tags = {stage: s.text(stage.value, default) for stage, default in DEFAULT_TAGS.items()}
    if len(set(tags.values())) != len(tags):
        raise ConfigError("tags", "each stage needs its own tag name")
    return tags


def _forget_key(s: Section) -> str | None:
    """privacy.forget_key: the HMAC key of `forget`'s do-not-sync markers (a ${VAR})."""
    s.only("forget_key")
    return s.optional_text("forget_key")


def _feedback(s: Section) -> FeedbackConfig:
    s.only("unsubscribes", "activity", "note_on_open_deals", "consent_field_write")
    return FeedbackConfig(
        unsubscribes=s.flag("unsubscribes", True),
        activity=s.flag("activity", False),
        note_on_open_deals=s.flag("note_on_open_deals", True),
        consent_field_write=s.flag("consent_field_write", False),
    )


def parse_alerts(s: Section) -> AlertsConfig:
    s.only("webhook", "format", "on", "ping_url", "timeout")
    return AlertsConfig(
        webhook=s.url("webhook", None, carries="the alert").geturl() if s.has("webhook") else None,
        format=s.choice("format", ("json", "slack"), "json"),
        on=frozenset(s.items("on", _alert_event)) if s.has("on") else frozenset(ALERT_EVENTS),
        ping_url=s.url("ping_url", None, carries="the ping").geturl()
        if s.has("ping_url")
        else None,
        timeout_seconds=_seconds(s, "timeout", 5.0),
    )


def _alert_event(key: str, value: Any) -> str:
    if value not in ALERT_EVENTS:
        raise ConfigError(
            key,
            f"must be one of {', '.join(ALERT_EVENTS)}, got {value!r}"
            + did_you_mean(value, ALERT_EVENTS),
        )
    return str(value)


def _seconds(s: Section, name: str, default: float) -> float:
    """A duration in seconds: a number, or a number followed by `s` (`5s`)."""
    text = s.text(name, str(default)).strip()
    try:
        seconds = float(text.removesuffix("s"))
    except ValueError:
        raise ConfigError(s.key(name), f"must be seconds like 5s, got {text!r}") from None
    if not 0.05 <= seconds <= 60:
        raise ConfigError(s.key(name), "must be between 0.05s and 60s")
    return seconds
