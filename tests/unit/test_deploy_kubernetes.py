"""Issue 16, `deploy kubernetes`: the rendered manifests validate offline against a recent
Kubernetes release's schemas and carry what a safe unattended run needs."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from click.testing import CliRunner

from kommo_sync.cli import cli
from kommo_sync.deploy import (
    RUN_AS_USER,
    STOP_BOUND_SECONDS,
    Account,
    Options,
    dns_name,
    render,
    to_yaml,
)
from kommo_sync.errors import ConfigError

K8S_VERSION = "1.33"
IMAGE = "registry.example/kommo-sync:0.1.0"
SYNC_YAML = "state: ${KOMMO_SYNC_STATE}\nkommo:\n  base_url: https://acme.kommo.com\n"


def validate(manifest: dict[str, Any]) -> None:
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


def rendered(*accounts: Account, **options: Any) -> list[dict[str, Any]]:
    return render(list(accounts), Options(IMAGE, **options))


def cron_job(**options: Any) -> dict[str, Any]:
    return rendered(Account("acme"), **options)[0]


def pod_spec(manifest: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = manifest["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return spec


def folder(tmp_path: Path, name: str, text: str = SYNC_YAML) -> Path:
    path = tmp_path / name
    path.mkdir()
    (path / "sync.yaml").write_text(text)
    return path


def deploy(*args: str) -> Any:
    return CliRunner().invoke(cli, ["deploy", "kubernetes", "--image", IMAGE, *args])


def test_every_rendered_manifest_validates_against_the_kubernetes_schema() -> None:
    manifests = rendered(
        Account("acme", SYNC_YAML), Account("Beta_Co.eu"), namespace="sync", suspend=True
    )
    assert [m["kind"] for m in manifests] == ["ConfigMap", "CronJob", "CronJob"]
    for manifest in manifests:
        validate(manifest)


def test_a_broken_manifest_fails_the_same_validation() -> None:
    broken = copy.deepcopy(cron_job())
    pod_spec(broken)["restartPolicy"] = ["Never"]
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(broken)
    misspelt = copy.deepcopy(cron_job())
    misspelt["spec"]["concurrencyPolicyy"] = "Forbid"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(misspelt)


def test_the_cron_job_runs_one_at_a_time_and_leaves_retries_to_the_next_schedule() -> None:
    job = cron_job(schedule="*/5 * * * *")
    spec = job["spec"]
    assert spec["schedule"] == "*/5 * * * *"
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["startingDeadlineSeconds"] > 0
    assert spec["successfulJobsHistoryLimit"] > 0 and spec["failedJobsHistoryLimit"] > 0
    assert spec["suspend"] is False
    assert spec["jobTemplate"]["spec"]["backoffLimit"] == 0
    assert spec["jobTemplate"]["spec"]["activeDeadlineSeconds"] > 0
    assert pod_spec(job)["restartPolicy"] == "Never"


def test_the_pod_outlasts_the_graceful_stop_and_runs_locked_down() -> None:
    pod = pod_spec(cron_job())
    assert pod["terminationGracePeriodSeconds"] > STOP_BOUND_SECONDS
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == RUN_AS_USER == 10001
    (container,) = pod["containers"]
    assert container["image"] == IMAGE
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert set(container["resources"]) == {"requests", "limits"}
    assert container["envFrom"] == [{"secretRef": {"name": "kommo-sync-acme"}}]
    assert container["args"] == ["--config", "/etc/kommo-sync/sync.yaml", "run"]


def test_a_folder_account_gets_a_config_map_mounted_at_etc_kommo_sync() -> None:
    config_map, job = rendered(Account("acme", SYNC_YAML), namespace="sync")
    assert config_map["data"] == {"sync.yaml": SYNC_YAML}
    assert config_map["metadata"]["namespace"] == job["metadata"]["namespace"] == "sync"
    pod = pod_spec(job)
    assert {"name": "config", "configMap": {"name": "kommo-sync-acme"}} in pod["volumes"]
    mounts = pod["containers"][0]["volumeMounts"]
    assert {"name": "config", "mountPath": "/etc/kommo-sync", "readOnly": True} in mounts


def test_every_manifest_the_job_and_its_pod_carry_the_app_and_account_labels() -> None:
    config_map, job = rendered(Account("Beta_Co.eu", SYNC_YAML))
    labels = {"app.kubernetes.io/name": "kommo-sync", "kommo-sync/account": "Beta_Co.eu"}
    assert config_map["metadata"]["labels"] == job["metadata"]["labels"] == labels
    job_template = job["spec"]["jobTemplate"]
    assert job_template["metadata"]["labels"] == labels
    assert job_template["spec"]["template"]["metadata"]["labels"] == labels


def test_labels_map_to_dns_names_and_the_secret_follows_the_prefix() -> None:
    assert dns_name("Beta_Co.eu") == "kommo-sync-beta-co-eu"
    assert len(dns_name("a" * 63)) == 52
    job = rendered(Account("Beta_Co.eu"), secret_prefix="ks-")[0]
    assert job["metadata"]["name"] == "kommo-sync-beta-co-eu"
    secret = pod_spec(job)["containers"][0]["envFrom"][0]["secretRef"]["name"]
    assert secret == "ks-beta-co-eu"


@pytest.mark.parametrize(
    ("labels", "problem"),
    [
        (("acme.co", "Acme_Co"), "Acme_Co: maps to the name kommo-sync-acme-co, as acme.co does"),
        (("acme", "acme"), "acme: given twice"),
        (("acme-",), "acme-: a Kubernetes label must start and end alphanumeric"),
    ],
)
def test_labels_that_cannot_be_told_apart_are_refused(labels: tuple[str, ...], problem: str):
    with pytest.raises(ConfigError) as caught:
        rendered(*(Account(label) for label in labels))
    assert str(caught.value).startswith(problem)


def test_the_cli_renders_folders_and_labels_to_a_file(tmp_path: Path) -> None:
    acme = folder(tmp_path, "acme")
    out = tmp_path / "kommo-sync.yaml"
    result = deploy(str(acme), "beta", "--suspend", "--output", str(out))
    assert result.exit_code == 0, result.output
    assert result.output == ""
    manifests = list(yaml.safe_load_all(out.read_text()))
    assert [(m["kind"], m["metadata"]["name"]) for m in manifests] == [
        ("ConfigMap", "kommo-sync-acme"),
        ("CronJob", "kommo-sync-acme"),
        ("CronJob", "kommo-sync-beta"),
    ]
    assert manifests[0]["data"]["sync.yaml"] == SYNC_YAML
    assert "  sync.yaml: |\n    state: ${KOMMO_SYNC_STATE}\n" in out.read_text()
    assert all(m["spec"]["suspend"] is True for m in manifests[1:])
    for manifest in manifests:
        validate(manifest)


def test_the_cli_takes_the_account_label_from_the_config(tmp_path: Path) -> None:
    acme = folder(tmp_path, "acme", "account: Acme.EU\n" + SYNC_YAML)
    result = deploy(str(acme))
    assert result.exit_code == 0, result.output
    assert result.stdout == to_yaml(
        render([Account("Acme.EU", (acme / "sync.yaml").read_text())], Options(IMAGE))
    )


@pytest.mark.parametrize(
    ("argument", "text", "message"),
    [
        ("./missing", None, "config error: ./missing: no such folder"),
        ("bad label!", None, "config error: bad label!: neither a folder holding sync.yaml"),
        ("empty", "", "config error: --config: file"),
        ("sqlite", "state: ./state.db\n", "state: give the Postgres URL through a variable"),
        ("envfile", SYNC_YAML + "env_file: env\n", "env_file: remove it"),
        (
            "tokenfile",
            SYNC_YAML + "  oauth:\n    client_id: c\n",
            "kommo.oauth.token_store: give token_store: state",
        ),
    ],
)
def test_bad_accounts_exit_2_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argument: str, text: str | None, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    if text is not None:
        (tmp_path / argument).mkdir()
        if text:
            (tmp_path / argument / "sync.yaml").write_text(text)
    result = deploy(argument)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert message in result.stderr


@pytest.mark.parametrize(
    ("option", "value"),
    [("--namespace", "Not_DNS"), ("--secret-prefix", "Kommo_"), ("--schedule", "*/15 * *")],
)
def test_bad_options_exit_2_naming_the_option(option: str, value: str) -> None:
    result = deploy("acme", option, value)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"config error: {option}:")
    assert len(result.stderr.splitlines()) == 1


def test_a_missing_image_is_a_usage_error() -> None:
    missing = CliRunner().invoke(cli, ["deploy", "kubernetes", "acme"])
    assert missing.exit_code == 2 and "--image" in missing.stderr
