"""End-to-end fixtures: the real server with its supervised worker (`python -m app.cli serve`)
on a temporary database, and Debian's headless Chromium driven by Playwright.

    .venv/bin/python -m pytest tests/e2e -q -x

The server requires a token (ZOOLAB_TOKEN), so the dashboard's token prompt is exercised;
pages other than the launch test start with the token in localStorage. Screenshots go to
test-artifacts/screenshots/ (git-ignored)."""

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


def _start_server(tmp: Path, *extra: str) -> Server:
    data_dir = os.environ.get("ZOOLAB_DATA_DIR") or str((REPO.parent / "shared" / "data").resolve())
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
    # Its own process group: the worker it spawns is stopped with it (see _stop_server).
    process = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--port", str(port), *extra],
                               env=env, cwd=REPO, stdout=log.open("w"), stderr=subprocess.STDOUT,
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
            process.kill()
            pytest.fail("server did not answer /health in 90 s" + server.log_tail())
        time.sleep(0.3)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def _stop_server(server: Server) -> None:
    """SIGTERM to the server and its worker together. The worker is signalled directly because
    uvicorn re-raises SIGTERM after its shutdown, so `zoolab serve` never reaches the code that
    stops its supervised worker."""
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


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """The real server and its supervised worker."""
    s = _start_server(tmp_path_factory.mktemp("zoolab-e2e"))
    yield s
    _stop_server(s)


@pytest.fixture(scope="session")
def idle_server(tmp_path_factory):
    """A server without any worker: runs stay queued."""
    s = _start_server(tmp_path_factory.mktemp("zoolab-e2e-idle"), "--no-worker")
    yield s
    _stop_server(s)


@pytest.fixture(scope="session")
def finished_runs(server):
    """Three small finished MNIST runs of different sizes, for compare, detail and URL tests."""
    runs = [server.post("/runs", {"model": model, "name": f"e2e {model}", **QUICK})
            for model in ("mnist-logreg", "mnist-2fc-relu-55k", "mnist-3fc-2bn-51k")]
    return server.wait_for([r["id"] for r in runs])


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _page(browser, token: str | None, viewport: dict):
    context = browser.new_context(viewport=viewport, device_scale_factor=1)
    if token:
        context.add_init_script(f"localStorage.setItem({TOKEN_KEY!r}, {token!r})")
    page = context.new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    return context, page, errors


@pytest.fixture
def page(browser):
    """A page that already holds the server's token."""
    context, page, errors = _page(browser, TOKEN, {"width": 1360, "height": 900})
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture
def fresh_page(browser):
    """A page of a first visit: no token stored yet."""
    context, page, errors = _page(browser, None, {"width": 1360, "height": 900})
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture
def narrow_page(browser):
    context, page, errors = _page(browser, TOKEN, {"width": 400, "height": 860})
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def screenshot(page, name: str, path: Path | None = None) -> Path:
    target = path or SCREENSHOTS / f"{name}.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target), full_page=True)
    return target
