"""A throwaway PostgreSQL server: the run store's tests and bench/history.py both start one.

`initdb` into a temporary directory, `pg_ctl` on a free loopback port (fsync off: nothing
here outlives the process), as the `postgres` user (or `nobody`) when running as root,
since initdb and postgres refuse root. `stop()` stops it and removes the directory.
Without the binaries, `PostgresUnavailable` says what to install
(tests/unit/history/postgres_deps.sh does it).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

USER = "flow"


class PostgresUnavailable(Exception):
    """No PostgreSQL binaries, or the server did not start or stop."""


def pg_bin() -> Path:
    """The directory of initdb and pg_ctl: on PATH, else Debian's newest."""
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).resolve().parent
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4])
    )
    if not found:
        raise PostgresUnavailable(
            "PostgreSQL binaries (initdb, pg_ctl) not found on PATH or in "
            "/usr/lib/postgresql/*/bin: install Debian's postgresql package "
            "(apt-get install postgresql; tests/unit/history/postgres_deps.sh does it)"
        )
    return Path(found[-1]).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@dataclass
class Postgres:
    """A running throwaway server; `dsn(db)` names one of its databases."""

    port: int
    base: Path
    bindir: Path
    run_as: list[str] = field(default_factory=list)
    user: str = USER

    @property
    def data(self) -> Path:
        return self.base / "data"

    @property
    def logfile(self) -> Path:
        return self.base / "server.log"

    def dsn(self, database: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def pg(self, *args: str) -> None:
        cmd = [*self.run_as, *args]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode:
            tail = self.logfile.read_text()[-2000:] if self.logfile.exists() else ""
            raise PostgresUnavailable(
                f"{' '.join(args[:2])} failed: {done.stderr or done.stdout}\n{tail}"
            )

    def stop(self) -> None:
        try:
            self.pg(
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.data),
                "-m",
                "fast",
                "-w",
                "-t",
                "60",
                "stop",
            )
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


def start(settings: Sequence[str] = ()) -> Postgres:
    """initdb and start a server; `settings` are extra `name=value` server settings."""
    bindir = pg_bin()
    run_as: list[str] = []
    owner = None
    if os.geteuid() == 0:  # initdb and postgres refuse to run as root
        name = "postgres" if _has_user("postgres") else "nobody"
        owner = pwd.getpwnam(name)
        run_as = ["runuser", "-u", name, "--"]
    base = Path(tempfile.mkdtemp(prefix="flowops-pg-"))
    if owner is not None:
        os.chown(base, owner.pw_uid, owner.pw_gid)
    server = Postgres(free_port(), base, bindir, run_as)
    try:
        server.pg(
            str(bindir / "initdb"),
            *("-D", str(server.data), "-U", USER, "--auth=trust", "-E", "UTF8"),
            *("--no-sync", "--no-instructions"),
        )
        extra = "".join(f" -c {s}" for s in settings)
        options = (
            f"-p {server.port} -h 127.0.0.1 -k {server.data} -c fsync=off "
            f"-c synchronous_commit=off -c full_page_writes=off{extra}"
        )
        server.pg(
            str(bindir / "pg_ctl"),
            *("-D", str(server.data), "-l", str(server.logfile), "-o", options),
            *("-w", "-t", "60", "start"),
        )
    except BaseException:
        shutil.rmtree(base, ignore_errors=True)
        raise
    return server


@contextmanager
def running(settings: Sequence[str] = ()) -> Iterator[Postgres]:
    """A server for the block, stopped and removed after it."""
    server = start(settings)
    try:
        yield server
    finally:
        server.stop()
