"""A private, throw-away PostgreSQL cluster for the shared-gallery tests and benchmarks.

The server binaries come from Debian's packages (tests/install_postgres.sh, run by the README's test
command). The cluster lives in a temporary folder and listens on a Unix socket in that folder only (no
TCP), with trust authentication: nothing outside this machine's processes can reach it. PostgreSQL refuses
to run as root, so under root it runs as the `postgres` user the package created.

    server = PostgresServer.start()        # or None-raising `find_binaries()` to decide whether to skip
    url = server.create_database("g1")     # postgresql://postgres@/g1?host=/tmp/...&port=...
    server.restart(); server.stop()
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path


def find_binaries() -> Path | None:
    """The folder with initdb / pg_ctl (Debian keeps them out of PATH), or None when not installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def _free_port() -> int:  # only names the socket file (.s.PGSQL.<port>); nothing listens on TCP
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class PostgresServer:
    bin_dir: Path
    folder: Path  # data/ and the socket
    port: int
    user: str | None  # the OS user the server runs as when we are root

    @classmethod
    def start(cls) -> "PostgresServer":
        bin_dir = find_binaries()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL is not installed (bash tests/install_postgres.sh)")
        user = "postgres" if os.geteuid() == 0 else None
        folder = Path(tempfile.mkdtemp(prefix="facelab-pg-"))
        if user:
            entry = pwd.getpwnam(user)
            os.chown(folder, entry.pw_uid, entry.pw_gid)
        server = cls(bin_dir, folder, _free_port(), user)
        server._run("initdb", "-D", str(server.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                    "--no-sync", "--locale=C")
        server.launch()
        return server

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin_dir / tool), *args]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if result.returncode:
            raise RuntimeError(f"{tool} failed ({result.returncode}): {result.stdout}{result.stderr}")

    def launch(self) -> None:
        """Start the server on this cluster (again, after `stop`)."""
        # listen_addresses='': Unix socket only. fsync stays on: the kill -9 tests are about durability.
        options = f"-c listen_addresses='' -c unix_socket_directories='{self.folder}' -p {self.port} -c max_connections=200"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.folder / "server.log"), "-o", options, "-w",
                  "-t", "60", "start")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@/{database}?host={self.folder}&port={self.port}"

    def create_database(self, prefix: str = "facelab") -> str:
        """A fresh, empty database; returns its URL."""
        import psycopg

        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self) -> None:
        """Stop (closing every client connection) and start again on the same socket."""
        self.stop()
        self.launch()

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        except RuntimeError:
            pass  # already stopped
        shutil.rmtree(self.folder, ignore_errors=True)
