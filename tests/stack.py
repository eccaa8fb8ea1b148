"""A real zoolab stack for tests, browser tests and benchmarks — the one helper that starts
one: `zoolab serve` (uvicorn + supervised worker subprocess) on a free port of 127.0.0.1,
with its own temporary SQLite database (or the PostgreSQL database given as `database_url`)
and artifact folder.

    with Stack(tmp_path) as stack:                 # starts, waits for /health
        run = stack.post_run(model="mnist-logreg", epochs=1, train_subset=2000)
        stack.wait_run(run["id"], "finished")
        stack.query("SELECT status FROM run WHERE id = ?", run["id"])   # behind the API

The server is started in a new session, so its worker subprocess shares its process
group: `close()` ends every process of that group (and only those), which also cleans
up a worker orphaned by a killed server. Output of the server and of every worker it
spawns goes to `stack.log_path`.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg.types.string import TextLoader
from sqlalchemy.engine import make_url

from app.client import sse
from app.settings import choose_data_dir

REPO = Path(__file__).resolve().parent.parent
DATA_DIR = str(choose_data_dir(os.environ.get("ZOOLAB_DATA_DIR"), REPO))
TERMINAL = ("finished", "failed", "cancelled", "pruned")
# A run that trains and evaluates in a second or two.
QUICK_RUN = {"model": "mnist-logreg", "epochs": 1, "train_subset": 2000, "test_subset": 2000}
# A run that trains in a couple of seconds and is still evaluated on the full 10,000-image test set.
QUICK_FULL_TEST = {"model": "mnist-logreg", "epochs": 1, "train_subset": 6000}


def start_worker(name: str, *args: str, env: dict[str, str], cwd: Path, stdout=None,
                 preexec_fn: Callable[[], None] | None = None) -> subprocess.Popen:
    """A standalone worker process (`python -m app.worker`) on the database of `env`."""
    return subprocess.Popen([sys.executable, "-m", "app.worker", "--name", name, *args], env=env, cwd=cwd,
                            stdout=stdout, stderr=subprocess.STDOUT if stdout else None, preexec_fn=preexec_fn)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, every: float = 0.2) -> Any:
    """Poll `predicate` until it returns something truthy (returned) or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except (httpx.TransportError, sqlite3.OperationalError, psycopg.OperationalError) as e:  # not up yet / busy
            last_error = e
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}"
                               + (f" (last error: {last_error!r})" if last_error else ""))
        time.sleep(every)


def pid_alive(pid: int) -> bool:
    """True if `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def group_pids(pgid: int) -> list[int]:
    """Live processes of process group `pgid` (from /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(entry.name))
    return pids


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except (FileNotFoundError, ProcessLookupError):
        return []


class Stack:
    """One `zoolab serve` process (and its worker) on a temporary database.

    `root` holds runs.db (unless `database_url` names another database), artifacts/ and
    server.log. Two Stack objects on the same `root` (and `database_url`) share the
    database: that is how a test restarts a server."""

    def __init__(self, root: Path, *, port: int | None = None, worker: bool = True,
                 token: str | None = None, env: dict[str, str] | None = None,
                 args: Iterable[str] = (), data_dir: str | Path = DATA_DIR, database_url: str | None = None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.worker = worker
        self.token = token
        self.db_path = self.root / "runs.db"
        self.database_url = database_url or f"sqlite:///{self.db_path}"
        self.artifact_dir = self.root / "artifacts"
        self.log_path = self.root / "server.log"
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith("ZOOLAB_") or k in ("ZOOLAB_THREADS", "ZOOLAB_DEVICE")}
        self.env.update({
            "ZOOLAB_DATABASE_URL": self.database_url,
            "ZOOLAB_ARTIFACT_DIR": str(self.artifact_dir),
            "ZOOLAB_DATA_DIR": str(data_dir),
            "ZOOLAB_DOWNLOAD": "false",
            "PYTHONUNBUFFERED": "1",
        })
        self.env.update(env or {})
        self.args = list(args)
        self.proc: subprocess.Popen | None = None
        self.workers_started: list[subprocess.Popen] = []
        self._log = None
        self._api: httpx.Client | None = None

    # --- lifecycle ------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "app.cli", "serve", "--port", str(self.port), *self.args]
        if not self.worker:
            cmd.append("--no-worker")
        if self.token:
            cmd += ["--token", self.token]
        return cmd

    def start(self, timeout: float = 90.0, workers: int | None = None) -> Stack:
        """Start and wait until /health answers with `workers` alive (default: 1 with a worker)."""
        self._log = open(self.log_path, "ab")
        # cwd is the temporary folder: no stray .env or runs.db of the checkout is used.
        self.proc = subprocess.Popen(self.command(), env=self.env, cwd=self.root, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        want = (1 if self.worker else 0) if workers is None else workers

        def healthy():
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            r = httpx.get(self.url + "/health", timeout=5)
            return r.status_code == 200 and r.json()["workers_alive"] >= want

        try:
            wait_for(healthy, timeout, f"zoolab serve on port {self.port} to be healthy")
        except BaseException:
            self.close()
            raise
        return self

    def spawn_worker(self, name: str, preexec_fn: Callable[[], None] | None = None) -> subprocess.Popen:
        """A standalone worker (`python -m app.worker`) on this stack's database, for a
        stack started with worker=False; ended by close()."""
        if self._log is None:
            self._log = open(self.log_path, "ab")
        proc = start_worker(name, env=self.env, cwd=self.root, stdout=self._log, preexec_fn=preexec_fn)
        self.workers_started.append(proc)
        return proc

    def signal(self, sig: int) -> None:
        """Send `sig` to the server process only (not its worker)."""
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float = 60.0) -> int:
        return self.proc.wait(timeout)

    def close(self) -> None:
        """Stop the server gracefully, then end whatever is left of its process group."""
        if self._api is not None:
            self._api.close()
            self._api = None
        for worker in self.workers_started:
            if worker.poll() is None:
                worker.terminate()
                try:
                    worker.wait(20)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.wait(10)
        if self.proc is None:
            if self._log:
                self._log.close()
                self._log = None
            return
        if self.proc.poll() is None:  # a live server stops its worker itself: give it time
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                pass
            deadline = time.monotonic() + 10
            while group_pids(self.proc.pid) and time.monotonic() < deadline:
                time.sleep(0.1)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # only this stack's own process group
        except ProcessLookupError:
            pass
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        if self._log:
            self._log.close()
            self._log = None

    def __enter__(self) -> Stack:
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n--- server log ---\n" + "\n".join(self.log().splitlines()[-lines:])

    # --- HTTP -----------------------------------------------------------------------

    def client(self, timeout: float = 30.0, **kwargs) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return httpx.Client(base_url=self.url, timeout=timeout, headers=headers, **kwargs)

    @property
    def api(self) -> httpx.Client:
        """One client kept open for the stack's life (with the token, if any)."""
        if self._api is None:
            self._api = self.client()
        return self._api

    def post(self, path: str, body: dict | None = None) -> dict:
        r = self.api.post(path, json=body)
        assert r.status_code < 300, f"POST {path} {body}: {r.status_code} {r.text}"
        return r.json()

    def get(self, path: str, **kwargs) -> httpx.Response:
        with self.client() as c:
            return c.get(path, **kwargs)

    def post_run(self, **body) -> dict:
        with self.client() as c:
            r = c.post("/runs", json=body)
        assert r.status_code == 201, r.text
        return r.json()

    def run(self, run_id: int) -> dict:
        r = self.get(f"/runs/{run_id}")
        assert r.status_code == 200, r.text
        return r.json()

    def wait_run(self, run_id: int, status: str | Iterable[str] = TERMINAL, timeout: float = 120.0,
                 where: Callable[[dict], bool] = lambda run: True, every: float = 0.2) -> dict:
        """Wait until run `run_id` has `status` (one or several) and `where(run)` holds.
        Fails at once if the run reaches another terminal status."""
        wanted = {status} if isinstance(status, str) else set(status)

        def check():
            run = self.run(run_id)
            if run["status"] in TERMINAL and run["status"] not in wanted:
                raise AssertionError(f"run {run_id} ended {run['status']}, wanted {sorted(wanted)}: "
                                     f"{run['error']}\n{run['traceback'] or ''}")
            return run if run["status"] in wanted and where(run) else None

        return wait_for(check, timeout, f"run {run_id} to be {sorted(wanted)}", every=every)

    def wait_runs(self, run_ids: Iterable[int], status: str | Iterable[str] = "finished",
                  timeout: float = 240.0) -> list[dict]:
        """Wait for several runs (see wait_run); the server's log tail is in the failure."""
        deadline = time.monotonic() + timeout
        try:
            return [self.wait_run(i, status, timeout=max(1.0, deadline - time.monotonic()), every=0.5)
                    for i in run_ids]
        except (AssertionError, TimeoutError) as e:
            raise type(e)(f"{e}{self.log_tail()}") from None

    def workers(self) -> list[dict]:
        return self.get("/workers").json()

    # --- the database, read directly --------------------------------------------------

    def integrity_check(self) -> str:
        return integrity_check(self.database_url)

    def query(self, sql: str, *params) -> list[tuple]:
        return query(self.database_url, sql, *params)


# --- a database, read directly ----------------------------------------------------------

def query(database_url: str, sql: str, *params) -> list[tuple]:
    """Rows of `sql` (with `?` placeholders) on a SQLite or PostgreSQL database, to look
    behind the API (or change what a test needs changed: committed). JSON columns come back
    as text on both."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        con = sqlite3.connect(url.database, timeout=30)
        try:
            with con:
                return con.execute(sql, params).fetchall()
        finally:
            con.close()
    with psycopg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False)) as con:
        for json_type in ("json", "jsonb"):
            con.adapters.register_loader(json_type, TextLoader)
        cursor = con.execute(sql.replace("%", "%%").replace("?", "%s"), params)
        return cursor.fetchall() if cursor.description else []


def integrity_check(database_url: str) -> str:
    """"ok" if the database is sound: SQLite's integrity_check; on PostgreSQL, amcheck's
    check of every B-tree index of the tables against its table."""
    if make_url(database_url).get_backend_name() == "sqlite":
        return query(database_url, "PRAGMA integrity_check")[0][0]
    query(database_url, "CREATE EXTENSION IF NOT EXISTS amcheck")
    query(database_url, "SELECT bt_index_check(i.indexrelid, true) FROM pg_index i "
                        "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam "
                        "WHERE am.amname = 'btree' AND c.relnamespace = 'public'::regnamespace")
    return "ok"


# --- SSE ---------------------------------------------------------------------------

sse_events = sse  # {id, event, data} dicts from a text/event-stream response (app/client.py)
