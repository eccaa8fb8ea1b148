"""What the end-to-end tests share: the real server in a process group of its own, an API client
with the token, the browser's launch flags, screenshots."""

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from app.config import choose_data_dir

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
CHROMIUM = os.environ.get("ZOOLAB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
TOKEN = "e2e-secret-token"
TOKEN_KEY = "zoolab.token"  # static/js/api.js

# Small runs: seconds each on a 2-core CPU, still evaluated on the full 10,000-image test set.
QUICK = {"epochs": 2, "train_subset": 6000}


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log: Path
    api: httpx.Client

    def post(self, path: str, body: dict | None = None) -> dict:
        r = self.api.post(path, json=body)
        assert r.status_code < 300, f"POST {path} {body}: {r.status_code} {r.text}"
        return r.json()

    def run(self, run_id: int) -> dict:
        return self.api.get(f"/runs/{run_id}").json()

    def wait_for(self, run_ids: list[int], statuses=("finished",), timeout: float = 240) -> list[dict]:
        deadline = time.monotonic() + timeout
        while True:
            runs = [self.run(i) for i in run_ids]
            if all(r["status"] in statuses for r in runs):
                return runs
            ended = [r for r in runs if r["status"] in ("failed", "cancelled") and r["status"] not in statuses]
            assert not ended, f"runs ended unexpectedly: {[(r['id'], r['status'], r['error']) for r in ended]}"
            assert time.monotonic() < deadline, f"runs not {statuses} after {timeout} s: " + str(
                [(r["id"], r["status"]) for r in runs]) + self.log_tail()
            time.sleep(0.5)

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n--- server log ---\n" + "\n".join(text.splitlines()[-lines:])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(tmp: Path, *extra: str) -> Server:
    data_dir = str(choose_data_dir(os.environ.get("ZOOLAB_DATA_DIR"), REPO))
    port = _free_port()
    env = {**os.environ,
           "ZOOLAB_DATABASE_URL": f"sqlite:///{tmp / 'runs.db'}",
           "ZOOLAB_ARTIFACT_DIR": str(tmp / "artifacts"),
           "ZOOLAB_DATA_DIR": data_dir,
           "ZOOLAB_DOWNLOAD": "false",
           "ZOOLAB_TOKEN": TOKEN,
           # Frequent within-epoch progress, so live curves move inside short epochs.
           "ZOOLAB_PROGRESS_SECONDS": "0.25",
           "ZOOLAB_HEARTBEAT_SECONDS": "0.5"}
    log = tmp / "server.log"
    # Its own process group: the worker it spawns is stopped with it (see stop_server).
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--port", str(port), *extra],
                                   env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    server = Server(url, process, log, httpx.Client(base_url=url, timeout=30,
                                                     headers={"Authorization": f"Bearer {TOKEN}"}))
    deadline = time.monotonic() + 90
    while True:
        if process.poll() is not None:
            pytest.fail(f"server exited with {process.returncode}" + server.log_tail())
        try:
            if server.api.get("/health").status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            pytest.fail("server did not answer /health in 90 s" + server.log_tail())
        time.sleep(0.3)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def stop_server(server: Server) -> None:
    """SIGTERM to the whole process group, server and worker together, then SIGKILL to whatever
    is left after 30 s: no worker outlives the session, whatever the server's shutdown does."""
    server.api.close()
    pgid = server.process.pid
    os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while _group_alive(pgid) and time.monotonic() < deadline:
        server.process.poll()
        time.sleep(0.2)
    if _group_alive(pgid):
        os.killpg(pgid, signal.SIGKILL)
    server.process.wait()


def screenshot(page, name: str, path: Path | None = None) -> Path:
    target = path or SCREENSHOTS / f"{name}.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    page.evaluate("window.scrollTo(0, 0)")  # a sticky header stays on top in a full-page shot
    page.screenshot(path=str(target), full_page=True)
    return target
