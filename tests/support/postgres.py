"""A throwaway PostgreSQL server for the test run: initdb into a temp dir, start, stop.

PostgreSQL refuses to run as root, so as root the cluster belongs to `postgres` and every
server command runs through `runuser -u postgres`.

    python -m tests.support.postgres start DIR   # prints the admin URL
    python -m tests.support.postgres stop DIR
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path


class PostgresUnavailable(RuntimeError):
    pass


def _bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    if candidates:
        return candidates[0]
    raise PostgresUnavailable(f"{name} not found: install postgresql (scripts/bootstrap.sh does)")


def _as_owner(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresServer:
    data_dir: Path
    port: int
    user: str = "roadmesh"

    @property
    def admin_url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"

    def url(self, dbname: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{dbname}"

    @classmethod
    def start(cls, base: Path) -> PostgresServer:
        base.mkdir(parents=True, exist_ok=True)
        data = base / "pgdata"
        port = _free_port()
        server = cls(data, port)
        if os.geteuid() == 0:
            os.chmod(base, 0o755)
            shutil.chown(base, "postgres", "postgres")
        subprocess.run(
            _as_owner(
                [
                    _bin("initdb"),
                    "-D",
                    str(data),
                    "-U",
                    server.user,
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ]
            ),
            check=True,
            capture_output=True,
        )
        opts = (
            f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        )
        subprocess.run(
            _as_owner(
                [
                    _bin("pg_ctl"),
                    "-D",
                    str(data),
                    "-o",
                    opts,
                    "-l",
                    str(base / "postgres.log"),
                    "-w",
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
        )
        (base / "port").write_text(str(port))
        return server

    @classmethod
    def attach(cls, base: Path) -> PostgresServer:
        return cls(base / "pgdata", int((base / "port").read_text()))

    def stop(self) -> None:
        subprocess.run(
            _as_owner([_bin("pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"]),
            check=False,
            capture_output=True,
        )

    def create_database(self, prefix: str = "rm") -> str:
        import psycopg

        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in {"start", "stop"}:
        print(__doc__, file=sys.stderr)
        return 2
    base = Path(argv[1]).resolve()
    if argv[0] == "start":
        print(PostgresServer.start(base).admin_url)
    else:
        PostgresServer.attach(base).stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
