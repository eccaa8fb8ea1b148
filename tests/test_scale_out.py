"""docs/scale-out.md, run as written on one machine: its SQL creates the role and database on a
real PostgreSQL server; its server block upgrades the schema and serves beyond 127.0.0.1 with
a token; its worker block, its Slurm script (run by bash as Slurm would, with Slurm's
variables) and its worker --gpus line do what the document says; its systemd unit passes
systemd's own checker. The document's placeholders (capitals) are filled in as a reader would.

    .venv/bin/python -m pytest tests/test_scale_out.py -q
"""

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.stack import DATA_DIR, QUICK_RUN, REPO, free_port, wait_for

DOC = REPO / "docs" / "scale-out.md"
ZOOLAB = Path(sys.executable).parent / "zoolab"


def blocks() -> dict[str, str]:
    """The code blocks the document marks with <!-- run: NAME -->."""
    text = DOC.read_text()
    return dict(re.findall(r"<!-- run: (\w+) -->\s*```\w*\n(.*?)```", text, flags=re.S))


@pytest.fixture(scope="module")
def lab(postgres_server, tmp_path_factory):
    """The document's database made by its own SQL, and the fills for its placeholders."""
    role = f"lab_{secrets.token_hex(4)}"
    password = secrets.token_hex(12)
    sql = re.sub(r"\bzoolab\b", role, blocks()["database"]).replace("CHANGE-ME", password)
    with postgres_server._admin() as admin:
        for statement in filter(None, (s.strip() for s in sql.split(";"))):
            admin.execute(statement)
    root = tmp_path_factory.mktemp("scale-out")
    fills = {"zoolab:CHANGE-ME@DB-HOST:5432/zoolab": f"{role}:{password}@127.0.0.1:{postgres_server.port}/{role}",
             "/mnt/zoolab/artifacts": str(root / "artifacts"), "/data/zoolab": str(DATA_DIR),
             "A-LONG-RANDOM-TOKEN": "scale-out-token", "ZOOLAB-CHECKOUT/.venv/bin/zoolab": str(ZOOLAB),
             "ZOOLAB-CHECKOUT": str(REPO), ".venv/bin/zoolab": str(ZOOLAB), "--port 8000": f"--port {free_port()}"}
    yield root, fills
    with postgres_server._admin() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{role}" WITH (FORCE)')
        admin.execute(f'DROP ROLE IF EXISTS "{role}"')


def fill(text: str, fills: dict[str, str]) -> str:
    """Every placeholder replaced in one pass (the longest first where two start alike)."""
    pattern = "|".join(re.escape(k) for k in sorted(fills, key=len, reverse=True))
    return re.sub(pattern, lambda m: fills[m.group(0)], text)


def script(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.write_text(text)
    return path


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("ZOOLAB_")}


def test_the_documented_database_server_worker_and_slurm_job_work(lab):
    root, fills = lab
    server = subprocess.Popen(["bash", script(root, "server.sh", fill(blocks()["server"], fills))], cwd=root,
                              env=_env(), stdout=open(root / "server.log", "w"), stderr=subprocess.STDOUT,
                              start_new_session=True)
    worker = None
    try:
        port = re.search(r"--port (\d+)", fills["--port 8000"]).group(1)
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: httpx.get(f"{url}/health").status_code == 200, 120, "the documented server")
        role = fills["zoolab:CHANGE-ME@DB-HOST:5432/zoolab"].rsplit("/", 1)[1]
        password = fills["zoolab:CHANGE-ME@DB-HOST:5432/zoolab"].split(":")[1].split("@")[0]
        port_db = fills["zoolab:CHANGE-ME@DB-HOST:5432/zoolab"].split("@127.0.0.1:")[1].split("/")[0]
        with psycopg.connect(host="127.0.0.1", port=port_db, user=role, password=password, dbname=role) as con:
            assert con.execute("SELECT version_num FROM zoolab_version").fetchone()  # zoolab db upgrade ran
        api = httpx.Client(base_url=url, timeout=30, headers={"Authorization": "Bearer scale-out-token"})
        assert httpx.post(f"{url}/runs", json=QUICK_RUN).status_code == 401  # beyond loopback: the token

        # A worker as the document starts it, on "another machine": the run is trained, then
        # SIGTERM ends the worker in order.
        first = api.post("/runs", json=QUICK_RUN).json()["id"]
        # (exec: a signal to the script's process is the worker's, as it would be in a terminal)
        worker_sh = fill(blocks()["worker"], fills).replace(f"{ZOOLAB} worker", f"exec {ZOOLAB} worker")
        worker = subprocess.Popen(["bash", script(root, "worker.sh", worker_sh)], cwd=root, env=_env(),
                                  stdout=open(root / "worker.log", "w"), stderr=subprocess.STDOUT)
        done = wait_for(lambda: (r := api.get(f"/runs/{first}").json())["status"] == "finished" and r, 180,
                        "the documented worker to train a run")
        assert done["worker"].endswith("-cpu")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(60) == 0

        # A Slurm array task: the script as written, run by bash with Slurm's variables.
        second = api.post("/runs", json=QUICK_RUN).json()["id"]
        slurm = script(root, "zoolab-workers.sh", fill(blocks()["slurm"], fills))
        task = subprocess.run(["bash", str(slurm)], cwd=root, capture_output=True, text=True, timeout=300,
                              env={**_env(), "SLURM_ARRAY_JOB_ID": "4242", "SLURM_ARRAY_TASK_ID": "1",
                                   "SLURM_CPUS_PER_TASK": "1"})
        assert task.returncode == 0, task.stderr[-2000:]
        run = api.get(f"/runs/{second}").json()
        assert run["status"] == "finished" and run["worker"].endswith("-slurm-4242-1"), run
        assert run["versions"]["threads"] == 1
        api.close()
    finally:
        if worker is not None and worker.poll() is None:
            worker.kill()
            worker.wait(60)
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(60)


def test_gpu_workers_say_so_on_a_machine_without_cuda(lab):
    root, fills = lab
    done = subprocess.run([str(ZOOLAB), "worker", "--gpus", "all"], cwd=root, capture_output=True, text=True,
                          env={**_env(), "ZOOLAB_DATABASE_URL": "postgresql+psycopg://" + fills[
                              "zoolab:CHANGE-ME@DB-HOST:5432/zoolab"]}, timeout=120)
    assert done.returncode == 1 and "no CUDA device" in done.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd is not installed here")
def test_the_documented_systemd_unit_passes_systemds_checker(lab, tmp_path):
    _, fills = lab
    unit = fill(blocks()["systemd"], fills)
    assert "ExecStart=" in unit and str(ZOOLAB) in unit
    instance = tmp_path / "zoolab-worker@gpu0.service"  # verify needs an instance of the template
    instance.write_text(unit)
    checked = subprocess.run(["systemd-analyze", "verify", str(instance)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stderr
    broken = tmp_path / "zoolab-worker@gpu1.service"  # the checker does catch a wrong path
    broken.write_text(unit.replace(str(ZOOLAB), "/nonexistent/zoolab"))
    assert subprocess.run(["systemd-analyze", "verify", str(broken)], capture_output=True).returncode != 0
