"""A throwaway PostgreSQL server for the tests: the binaries of Debian's `postgresql`
package (`make test` installs it), a cluster in a fresh temporary folder listening on a
free port of 127.0.0.1 with a random password, deleted when stopped.

    server = PostgresServer.start()
    url = server.create_database()   # postgresql+psycopg://zoolab:…@127.0.0.1:PORT/zoolab_1
    server.drop_database(url)
    server.stop()

PostgreSQL refuses to run as root. Run by root (CI), the cluster belongs to the `postgres`
account that Debian's package creates (`nobody` where there is none) and its folder is
handed to that account; run by anyone else, it runs as them. The test process itself
stays who it is and only talks to the server over TCP.

Try it alone: `python tests/postgres.py` starts a server, prints a database URL, stops.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

USER = "zoolab"
# A throwaway cluster needs no durability: without fsync a CREATE DATABASE takes
# milliseconds. Connections: the tests' own engines, a server's pool (up to 40, see
# app/db.py) and a few per worker process.
SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "max_connections": "200",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    # Not UTC on purpose: stored times must not depend on the server's time zone.
    "timezone": "'America/Los_Angeles'",
}


def binaries() -> Path:
    """The folder of initdb and pg_ctl: Debian's newest /usr/lib/postgresql/N/bin, else PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                   key=lambda p: int(re.search(r"/(\d+)/bin/", p).group(1)))
    pg_ctl = found[-1] if found else shutil.which("pg_ctl")
    if pg_ctl is None:
        raise RuntimeError("PostgreSQL's server binaries (initdb, pg_ctl) are not installed: "
                           "`apt-get install postgresql` (make test does)")
    return Path(pg_ctl).parent


def server_account() -> pwd.struct_passwd | None:
    """Whom the server runs as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root and neither a `postgres` nor a `nobody` account exists "
                       "to run PostgreSQL as")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PostgresServer:
    folder: Path
    port: int
    password: str
    account: pwd.struct_passwd | None
    bin: Path
    _names: count = field(default_factory=lambda: count(1))

    @classmethod
    def start(cls, tries: int = 3) -> PostgresServer:
        """initdb + pg_ctl start in a new temporary folder; retried on a new port when
        another process took the free port first."""
        account = server_account()
        folder = Path(tempfile.mkdtemp(prefix="zoolab-pg-"))
        if account:
            os.chown(folder, account.pw_uid, account.pw_gid)
        server = cls(folder, 0, secrets.token_hex(16), account, binaries())
        try:
            server._initdb()
            for _ in range(tries):
                server.port = free_port()
                if server._pg_ctl_start():
                    return server
            raise RuntimeError(f"PostgreSQL did not start:\n{server.log()[-3000:]}")
        except BaseException:
            server.stop()
            raise

    def _run(self, *cmd: str) -> subprocess.CompletedProcess:
        as_account = {}
        if self.account:
            as_account = dict(user=self.account.pw_uid, group=self.account.pw_gid, extra_groups=[])
        return subprocess.run(cmd, cwd=self.folder, capture_output=True, text=True,
                              env={"PATH": os.environ.get("PATH", ""), "LC_ALL": "C"}, **as_account)

    def _initdb(self) -> None:
        secret = self.folder / "password"
        secret.write_text(self.password)
        if self.account:
            os.chown(secret, self.account.pw_uid, self.account.pw_gid)
        done = self._run(str(self.bin / "initdb"), "-D", "data", "-U", USER, f"--pwfile={secret}",
                         "--auth=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync")
        secret.unlink()
        if done.returncode:
            raise RuntimeError(f"initdb failed:\n{done.stdout}{done.stderr}")

    def _pg_ctl_start(self) -> bool:
        settings = {**SETTINGS, "port": str(self.port), "unix_socket_directories": f"'{self.folder}'"}
        # Appended: on a retry with another port the last setting of a name wins.
        with open(self.folder / "data" / "postgresql.conf", "a") as conf:
            conf.writelines(f"{k} = {v}\n" for k, v in settings.items())
        done = self._run(str(self.bin / "pg_ctl"), "start", "-w", "-t", "60", "-D", "data", "-l", "server.log")
        return done.returncode == 0

    def log(self) -> str:
        path = self.folder / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if (self.folder / "data" / "postmaster.pid").exists():
            self._run(str(self.bin / "pg_ctl"), "stop", "-m", "immediate", "-w", "-D", "data")
        shutil.rmtree(self.folder, ignore_errors=True)

    # --- databases ------------------------------------------------------------------

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{USER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def _admin(self) -> psycopg.Connection:
        return psycopg.connect(host="127.0.0.1", port=self.port, user=USER, password=self.password,
                               dbname="postgres", autocommit=True)

    def create_database(self) -> str:
        """A new empty database; its SQLAlchemy URL."""
        name = f"zoolab_{next(self._names)}"
        with self._admin() as con:
            con.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop it, ending whatever connections are still open to it."""
        with self._admin() as con:
            con.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')


if __name__ == "__main__":
    server = PostgresServer.start()
    try:
        print(server.create_database())
    finally:
        server.stop()
