"""`deploy kubernetes`: plain manifests, a CronJob per account and, for an account given as a
folder, a ConfigMap holding its sync.yaml. Rendering is pure (accounts and options in, manifest
dicts out); `account_from_folder` is the only part that reads a file."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kommo_sync.config import ACCOUNT_LABEL, NetworkConfig, account_of, read_yaml
from kommo_sync.errors import ConfigError

# SIGTERM stops a run at its next safe point within about a second, plus at most one request in
# flight (network.timeout_seconds, default below). Kubernetes' terminationGracePeriodSeconds and
# systemd's TimeoutStopSec (deploy/systemd/kommo-sync@.service) leave room above that bound.
STOP_BOUND_SECONDS = 1 + math.ceil(NetworkConfig().timeout_seconds)
STOP_GRACE_SECONDS = 120
RUN_AS_USER = 10001  # the uid deploy/Dockerfile creates
CONFIG_DIR = "/etc/kommo-sync"
ACTIVE_DEADLINE_SECONDS = 4 * 3600  # a first full sync of a large account takes hours
STARTING_DEADLINE_SECONDS = 300  # a start missed by more waits for the next schedule
CRONJOB_NAME_MAX = 52  # Kubernetes appends an 11-character suffix to a CronJob's Job names
LABEL_VALUE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?")
DNS_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")
APP = "kommo-sync"


@dataclass(frozen=True)
class Account:
    """An account to deploy: its label, and its sync.yaml's text when it came from a folder
    (without one, the ConfigMap `kommo-sync-<name>` is the operator's to create)."""

    label: str
    sync_yaml: str | None = None


@dataclass(frozen=True)
class Options:
    image: str
    schedule: str = "*/15 * * * *"
    namespace: str | None = None
    secret_prefix: str = "kommo-sync-"
    suspend: bool = False


def account_from_folder(folder: Path) -> Account:
    """The account a folder holding sync.yaml describes. Its state must come from a variable
    (the Postgres URL in the account's Secret) and it must not name an env file: in the pod the
    filesystem is read-only and only sync.yaml is mounted."""
    path = folder / "sync.yaml"
    raw = read_yaml(path)
    label = account_of(raw, folder)
    if "${" not in str(raw.get("state", "")):
        raise ConfigError(
            f"{path}: state",
            "give the Postgres URL through a variable, like state: ${KOMMO_SYNC_STATE} "
            "(the pod's filesystem is read-only)",
        )
    if raw.get("env_file"):
        raise ConfigError(
            f"{path}: env_file", "remove it: in Kubernetes the secrets come from the Secret"
        )
    _refuse_a_token_file(path, raw)
    return Account(label, path.read_text(encoding="utf-8"))


def _refuse_a_token_file(path: Path, raw: Any) -> None:
    """An OAuth integration's rotated refresh token must outlive the pod: in a file it would be
    lost with it (or not written at all, the filesystem being read-only), so the state keeps it."""
    kommo = raw.get("kommo") if isinstance(raw, dict) else None
    oauth = kommo.get("oauth") if isinstance(kommo, dict) else None
    if isinstance(oauth, dict) and oauth.get("token_store") != "state":
        raise ConfigError(
            f"{path}: kommo.oauth.token_store",
            "give token_store: state (the rotated token would be lost with the pod), and "
            "KOMMO_SYNC_TOKEN_KEY in the Secret",
        )


def account_from_label(label: str) -> Account:
    if not ACCOUNT_LABEL.fullmatch(label):
        raise ConfigError(
            label,
            "neither a folder holding sync.yaml nor an account label "
            "(letters, digits, '.', '_' or '-', at most 63)",
        )
    return Account(label)


def dns_name(label: str) -> str:
    """`kommo-sync-<label>` as a DNS-1123 label: lower case, '.' and '_' become '-', at most
    CRONJOB_NAME_MAX characters."""
    name = f"{APP}-{re.sub(r'[._]', '-', label.lower())}"
    return name[:CRONJOB_NAME_MAX].rstrip("-")


def render(accounts: list[Account], options: Options) -> list[dict[str, Any]]:
    """Every manifest, a ConfigMap before the CronJob that mounts it."""
    names = _names(accounts)
    _check_options(options)
    manifests: list[dict[str, Any]] = []
    for account in accounts:
        name = names[account.label]
        if account.sync_yaml is not None:
            manifests.append(_config_map(account, name, options))
        manifests.append(_cron_job(account, name, options))
    return manifests


def to_yaml(manifests: list[dict[str, Any]]) -> str:
    return yaml.dump_all(manifests, Dumper=_Dumper, sort_keys=False, explicit_start=True)


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (a ConfigMap's sync.yaml) as `|` blocks, readable in the manifest."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def _names(accounts: list[Account]) -> dict[str, str]:
    """Each account's resource name; an account given twice, or two mapping to one name, are
    refused."""
    owners: dict[str, str] = {}
    for account in accounts:
        if not LABEL_VALUE.fullmatch(account.label):
            raise ConfigError(account.label, "a Kubernetes label must start and end alphanumeric")
        name = dns_name(account.label)
        if name in owners:
            clash = owners[name]
            raise ConfigError(
                account.label,
                "given twice"
                if clash == account.label
                else f"maps to the name {name}, as {clash} does; rename one account",
            )
        owners[name] = account.label
    return {label: name for name, label in owners.items()}


def _check_options(options: Options) -> None:
    """What the schemas leave unchecked (they take any string) but the cluster would refuse."""
    if len(options.schedule.split()) != 5 and not options.schedule.startswith("@"):
        raise ConfigError("--schedule", "give five cron fields, like '*/15 * * * *', or @hourly")
    if not DNS_LABEL.fullmatch(f"{options.secret_prefix}x"):
        raise ConfigError("--secret-prefix", "use lower-case letters, digits and '-', like kommo-")
    if options.namespace is not None and not DNS_LABEL.fullmatch(options.namespace):
        raise ConfigError("--namespace", "use lower-case letters, digits and '-', like sync")


def _metadata(account: Account, name: str, options: Options) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "labels": _labels(account)}
    if options.namespace is not None:
        metadata["namespace"] = options.namespace
    return metadata


def _labels(account: Account) -> dict[str, str]:
    return {"app.kubernetes.io/name": APP, f"{APP}/account": account.label}


def _config_map(account: Account, name: str, options: Options) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(account, name, options),
        "data": {"sync.yaml": account.sync_yaml},
    }


def _cron_job(account: Account, name: str, options: Options) -> dict[str, Any]:
    """Forbid keeps one run per account; backoffLimit 0 because a failed run is retried by the
    next schedule, from the cursor it left, rather than at once into the same 429 or outage."""
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": _metadata(account, name, options),
        "spec": {
            "schedule": options.schedule,
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": STARTING_DEADLINE_SECONDS,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 5,
            "suspend": options.suspend,
            "jobTemplate": {
                "metadata": {"labels": _labels(account)},
                "spec": {
                    "backoffLimit": 0,
                    "activeDeadlineSeconds": ACTIVE_DEADLINE_SECONDS,
                    "template": _pod(account, name, options),
                },
            },
        },
    }


def _pod(account: Account, name: str, options: Options) -> dict[str, Any]:
    return {
        "metadata": {"labels": _labels(account)},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": STOP_GRACE_SECONDS,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": RUN_AS_USER,
                "runAsGroup": RUN_AS_USER,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [_container(account, name, options)],
            "volumes": [
                {"name": "config", "configMap": {"name": name}},
                {"name": "tmp", "emptyDir": {}},
            ],
        },
    }


def _container(account: Account, name: str, options: Options) -> dict[str, Any]:
    return {
        "name": APP,
        "image": options.image,
        "args": ["--config", f"{CONFIG_DIR}/sync.yaml", "run"],
        "envFrom": [{"secretRef": {"name": _secret_name(account, options)}}],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "resources": {
            "requests": {"cpu": "100m", "memory": "256Mi"},
            "limits": {"cpu": "1", "memory": "1Gi"},
        },
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }


def _secret_name(account: Account, options: Options) -> str:
    """`<prefix><label>` in DNS form (a Secret name allows 253 characters)."""
    return options.secret_prefix + re.sub(r"[._]", "-", account.label.lower())
