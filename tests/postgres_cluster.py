"""A throwaway PostgreSQL cluster for the tests: `initdb` in a temporary directory, listening on
a Unix socket only, run as a non-root user (PostgreSQL refuses root). Debian's server binaries
(package `postgresql`, installed by .ci/run) are found in /usr/lib/postgresql/*/bin or on PATH."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

SERVER_SETTINGS = (
    "-c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off "
    "-c max_connections=200"
)
RUN_AS_WHEN_ROOT = "nobody"


def server_bin_dir() -> Path | None:
    """The folder holding initdb and pg_ctl (the newest installed version), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version_of)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def _version_of(path: str) -> float:
    try:
        return float(Path(path).parts[-3])
    except ValueError:
        return 0.0


@dataclass
class Cluster:
    """A running cluster: `url` reaches its `postgres` database as superuser `postgres`."""

    folder: Path
    bin_dir: Path
    user: str | None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@/postgres?host={self.folder}"

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", "immediate", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [str(self.bin_dir / tool), *args],
            check=True,
            capture_output=True,
            user=self.user,
            cwd=self.folder,
        )


def start_cluster(bin_dir: Path) -> Cluster:
    """initdb and start a cluster in a new temporary folder; stop it with `Cluster.stop`."""
    folder = Path(tempfile.mkdtemp(prefix="kommo-sync-pg-"))
    user = RUN_AS_WHEN_ROOT if os.geteuid() == 0 else None
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    cluster = Cluster(folder, bin_dir, user)
    data = str(folder / "data")
    cluster._run("initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
    options = f"-k {folder} {SERVER_SETTINGS}"
    log = str(folder / "server.log")
    cluster._run("pg_ctl", "-D", data, "-o", options, "-l", log, "-w", "-t", "60", "start")
    return cluster
