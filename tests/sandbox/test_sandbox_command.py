"""`kommo-sync sandbox`: the three sandboxes on loopback, seeded, until SIGINT or SIGTERM, with a
ready sync.yaml and env file, so `check`, `run`, `status` and `backfill` can be tried without
accounts. Started as a real process; the commands it prints run as other processes."""

import json
import os
import shlex
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from kommo_sync.cli import cli

ROOT = Path(__file__).resolve().parents[2]
COMMAND = [sys.executable, "-m", "kommo_sync.cli"]
SECRETS = ("KOMMO_TOKEN", "MAILCHIMP_API_KEY", "KLAVIYO_API_KEY")
CLEAN_ENV = {name: value for name, value in os.environ.items() if name not in SECRETS}


def wait_for(paths: list[Path], process: subprocess.Popen, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not all(path.exists() for path in paths):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the sandbox wrote no config"
        time.sleep(0.1)


def kommo_sync(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*COMMAND, *args], cwd=ROOT, env=CLEAN_ENV, capture_output=True, text=True, timeout=180
    )


def test_the_sandbox_serves_until_sigterm_and_the_commands_it_prints_work_against_it(tmp_path):
    folder = tmp_path / "try it"
    config, env_file = folder / "sync.yaml", folder / "kommo-sync.env"
    process = subprocess.Popen(
        [*COMMAND, "sandbox", "--dir", str(folder), "--contacts", "40"],
        cwd=ROOT,
        env=CLEAN_ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for([config, env_file], process)
        assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
        common = ["--config", str(config), "--env-file", str(env_file)]
        commands = ("check", "run", "status", "status --json")
        ran = {name: kommo_sync(*common, *name.split()) for name in commands}
        for name, done in ran.items():
            assert done.returncode == 0, (name, done.stdout, done.stderr)
        assert ran["check"].stdout.splitlines()[-1] == "all 12 checks passed"
        assert ", exit 0, " in ran["run"].stdout.splitlines()[0]
        last = json.loads(ran["status --json"].stdout)["runs"][0]
        assert (last["id"], last["mode"], last["status"], last["exit_code"]) == (
            1,
            "run",
            "done",
            0,
        )
        assert last["counts"]["pushed"] > 0
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    shown = " ".join(shlex.quote(part) for part in common)
    for line in (
        f"  kommo-sync {shown} check",
        f"  kommo-sync {shown} run",
        f"  kommo-sync {shown} status",
    ):
        assert line in out.splitlines()
    assert f"  kommo-sync {shown} backfill --since " in out
    assert not folder.exists() or list(folder.iterdir()) == []


def test_the_sandbox_refuses_a_folder_holding_a_file_it_would_write(tmp_path):
    (tmp_path / "sync.yaml").write_text("mine\n")
    result = CliRunner().invoke(cli, ["sandbox", "--dir", str(tmp_path)], obj={})
    assert (result.exit_code, result.stderr.strip()) == (
        2,
        f"config error: --dir: {tmp_path / 'sync.yaml'} exists: "
        "the sandbox never overwrites a file; remove it or choose another --dir",
    )
    assert (tmp_path / "sync.yaml").read_text() == "mine\n"
