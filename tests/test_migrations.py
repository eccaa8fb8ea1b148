"""Upgrades keep every run: a runs.db made by zoolab's first release (tests/fixtures/, made by
make-runs-v0.1.0.sh with main at 08fd569) is upgraded by a real server at start with nothing
lost, its queued runs still train; the migrations build exactly the models' schema; a
database newer than the code is refused and left byte for byte as it was; the Optuna tables
of sweeps' studies, beside zoolab's, are neither touched by the migrations nor seen as a
difference.

    .venv/bin/python -m pytest tests/test_migrations.py -q
"""

import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.dialects import sqlite
from sqlalchemy.schema import CreateTable
from sqlmodel import SQLModel

from app import migrate, studies
from app.db import make_engine
from tests.stack import REPO, Stack, query
from trainer.config import group_key
from trainer.zoo import PRESETS

FIXTURE = REPO / "tests" / "fixtures" / "runs-v0.1.0.db"
TABLES = ("run", "metric", "progress", "event", "worker")


def _rows(db: Path) -> dict[str, list[dict]]:
    """Every row of the first release's tables, by table, with the first release's columns only."""
    with sqlite3.connect(FIXTURE) as old:
        columns = {t: [r[1] for r in old.execute(f"PRAGMA table_info({t})")] for t in TABLES}
    quoted = {t: ", ".join(f'"{c}"' for c in names) for t, names in columns.items()}
    with sqlite3.connect(db) as con:
        return {t: [dict(zip(columns[t], row)) for row in con.execute(f"SELECT {quoted[t]} FROM {t} ORDER BY 1")]
                for t in TABLES}


def _as_upgraded(table: str, rows: list[dict]) -> list[dict]:
    """The first release's rows as the migrations must leave them: a run's config gains the
    network it trained (its preset's layers, which were fixed then)."""
    if table != "run":
        return rows
    return [{**row, "config": json.dumps({**json.loads(row["config"]), "layers": list(PRESETS[row["model"]].layers)})}
            for row in rows]


def _copy_fixture(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(FIXTURE, folder / "runs.db"))


def _schema_diff(url: str, include_name=migrate.include_name) -> list:
    """What autogenerate would change, with the filter of app/migrations/env.py."""
    with make_engine(url).connect() as connection:
        opts = {"compare_type": True, "include_name": include_name, "version_table": migrate.VERSION_TABLE}
        return compare_metadata(MigrationContext.configure(connection, opts=opts), SQLModel.metadata)


def test_a_first_release_database_upgrades_with_nothing_lost(tmp_path):
    before = _rows(FIXTURE)
    assert {r["status"] for r in before["run"]} == {"finished", "failed", "cancelled", "queued"}
    assert before["metric"] and before["progress"] and before["event"]
    db = _copy_fixture(tmp_path)
    with Stack(tmp_path, worker=False) as stack:  # the server upgrades the database at start
        assert stack.query("SELECT version_num FROM zoolab_version") == [(migrate.head(),)]
        after = _rows(db)
        for table in TABLES:
            assert after[table][:len(before[table])] == _as_upgraded(table, before[table]), table
        runs = stack.get("/runs", params={"sort": "id", "order": "asc"}).json()["items"]
        assert [(r["id"], r["name"], r["status"]) for r in runs] == [
            (r["id"], r["name"], r["status"]) for r in before["run"]]
        assert all(r["notes"] == "" and r["tags"] == [] for r in runs)  # 0003: labels start empty
        metrics = stack.get("/runs/1/metrics").json()
        assert [e["epoch"] for e in metrics["epochs"]] == [1, 2]
        assert metrics["epochs"][-1]["test_acc"] == pytest.approx(runs[0]["final_test_acc"])
        # The run table was rebuilt (0002) with every metric kept, and ids are not reused any
        # more: not the newest run's once deleted, nor any id a run's events were written under.
        assert _autoincrement(db)
        highest = max(r["run_id"] or 0 for r in before["event"])
        assert highest == max(r["id"] for r in before["run"]) == 7
        doomed = stack.post_run(model="mnist-logreg", name="deleted at once")["id"]
        assert doomed == highest + 1
        stack.post(f"/runs/{doomed}/cancel")
        assert stack.api.delete(f"/runs/{doomed}").status_code == 204
        after = stack.post_run(model="mnist-logreg", name="after the delete")["id"]
        assert after == doomed + 1
        stack.post(f"/runs/{after}/cancel")  # not for the worker below
        # The queued runs of the old database are trained by the new worker.
        queued = [r["id"] for r in runs if r["status"] == "queued"]
        assert len(queued) == 2
        stack.spawn_worker("w-upgraded")
        for run_id in queued:
            assert stack.wait_run(run_id, "finished", timeout=300)["epochs_done"] >= 1
        assert stack.integrity_check() == "ok"
        assert stack.query("PRAGMA foreign_key_check") == []
    assert _schema_diff(f"sqlite:///{db}") == []


@pytest.mark.both_databases
def test_migrations_build_exactly_the_models_schema(database_url):
    """From an empty database, the revisions alone give the schema the code declares — so a
    schema change without its migration fails here."""
    with make_engine(database_url).begin() as connection:
        command.upgrade(migrate._config(connection), "head")
    assert _schema_diff(database_url) == []
    if database_url.startswith("sqlite"):  # (which compare_metadata does not see)
        assert _autoincrement(Path(database_url.removeprefix("sqlite:///")))
    assert "AUTOINCREMENT" in str(CreateTable(SQLModel.metadata.tables["run"]).compile(dialect=sqlite.dialect()))


def _autoincrement(db: Path) -> bool:
    with sqlite3.connect(db) as con:
        (sql,), = con.execute("SELECT sql FROM sqlite_master WHERE name = 'run'").fetchall()
    return "AUTOINCREMENT" in sql


@pytest.mark.both_databases
def test_a_first_release_run_upgrades_on_either_database(database_url):
    """The data steps too: a v0.1.0 run (no layers in its config) gains its preset's network
    and its group key, through the same revisions on SQLite and PostgreSQL."""
    engine = make_engine(database_url)
    with engine.begin() as connection:
        command.upgrade(migrate._config(connection), migrate.BASELINE)
    config = {"model": "mnist-3fc-bn1-51k", "name": "old", "dataset": "mnist", "epochs": 4, "seed": 2}
    query(database_url, "INSERT INTO run (name, model, dataset, status, config, params, created_at, attempts, "
                        "cancel_requested, epochs_total, epochs_done, epoch_progress, total_seconds, has_checkpoint, "
                        "has_artifacts) VALUES ('old', 'mnist-3fc-bn1-51k', 'mnist', 'queued', ?, 51490, "
                        "CURRENT_TIMESTAMP, 0, false, 4, 0, 0, 0, false, false)", json.dumps(config))
    assert migrate.upgrade(engine) == migrate.BASELINE
    (stored, key, notes, tags), = query(database_url, "SELECT config, group_key, notes, tags FROM run")
    stored = json.loads(stored)
    assert (notes, json.loads(tags)) == ("", [])
    assert stored == {**config, "layers": list(PRESETS["mnist-3fc-bn1-51k"].layers)}
    assert key == group_key(stored) and migrate.current(engine) == migrate.head()
    assert _schema_diff(database_url) == []


def test_optuna_tables_beside_ours_are_left_alone(tmp_path):
    """A sweep's study lives in Optuna's own tables of the same database: going down and up
    again through every migration keeps the study, and autogenerate sees no difference (without
    the filter it would drop Optuna's tables)."""
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    engine = make_engine(url)
    with engine.begin() as connection:  # by the migrations, whose downgrades name their constraints
        command.upgrade(migrate._config(connection), "head")
    study = optuna.create_study(study_name="kept", storage=studies.storage(engine), direction="maximize")
    study.add_trial(optuna.trial.create_trial(value=0.9, params={"lr": 0.01},
                                              distributions={"lr": optuna.distributions.FloatDistribution(1e-4, 1)}))
    assert _schema_diff(url) == []
    with engine.connect() as connection:  # autogenerate through app/migrations/env.py: nothing to do
        command.check(migrate._config(connection))
    dropped = {op[1].name for op in _schema_diff(url, include_name=None) if op[0] == "remove_table"}
    assert dropped == migrate.OPTUNA_TABLES
    with make_engine(url).begin() as connection:
        command.downgrade(migrate._config(connection), "0001")
    migrate.upgrade(make_engine(url))
    assert _schema_diff(url) == []
    with sqlite3.connect(tmp_path / "runs.db") as con:
        assert con.execute("SELECT version_num FROM zoolab_version").fetchall() == [(migrate.head(),)]
    kept = optuna.load_study(study_name="kept", storage=studies.storage(make_engine(url)))
    assert [(t.params, t.value) for t in kept.trials] == [({"lr": 0.01}, 0.9)]
    # Each keeps its own revision: Optuna's in Alembic's default table, checked by Optuna when
    # it opens the storage; zoolab's in its own.
    storage = studies.storage(make_engine(url))
    assert storage.get_current_version() == storage.get_head_version()
    with sqlite3.connect(tmp_path / "runs.db") as con:
        assert con.execute("SELECT version_num FROM alembic_version").fetchall() == [(storage.get_head_version(),)]


def test_a_development_build_s_version_table_moves_to_zoolab_s_own(tmp_path):
    """Builds before the first release with migrations kept zoolab's revision in `alembic_version`;
    such a database upgrades in place with nothing lost."""
    db = _copy_fixture(tmp_path)
    engine = make_engine(f"sqlite:///{db}")
    migrate.upgrade(engine)
    upgraded = _rows(db)
    with sqlite3.connect(db) as con:
        con.execute("ALTER TABLE zoolab_version RENAME TO alembic_version")
    assert migrate.current(engine) is None
    assert migrate.upgrade(engine) == migrate.head()
    assert migrate.current(engine) == migrate.head() and _rows(db) == upgraded
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT name FROM sqlite_master WHERE name = 'alembic_version'").fetchall() == []


def _zoolab(tmp_path: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {"ZOOLAB_DATABASE_URL": f"sqlite:///{tmp_path / 'runs.db'}", "PATH": "/usr/bin:/bin",
           "ZOOLAB_ARTIFACT_DIR": str(tmp_path / "artifacts"), "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", *args], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=timeout)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_database_newer_than_the_code_is_refused_and_left_unchanged(tmp_path):
    db = _copy_fixture(tmp_path)
    assert _zoolab(tmp_path, "app.cli", "db", "upgrade").returncode == 0
    con = sqlite3.connect(db)
    with con:
        con.execute("UPDATE zoolab_version SET version_num = '9999_from_the_future'")
    con.close()  # the last connection checkpoints the WAL into the file
    digest = _digest(db)
    for command_line in (("app.cli", "serve", "--no-worker", "--port", "1"), ("app.cli", "worker"),
                         ("app.cli", "db", "upgrade")):
        done = _zoolab(tmp_path, *command_line)
        assert done.returncode == 2, (command_line, done.stdout, done.stderr)
        assert "'9999_from_the_future', written by a newer zoolab" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    assert _digest(db) == digest


def test_a_worker_does_not_upgrade_a_database_a_server_relies_on(tmp_path):
    db = _copy_fixture(tmp_path)
    done = _zoolab(tmp_path, "app.cli", "worker", "--until-empty")
    assert done.returncode == 2
    assert "zoolab db upgrade" in done.stderr and "v0.1.0" in done.stderr, done.stderr
    assert _rows(db) == _rows(FIXTURE)  # (the file itself differs: SQLite switched it to WAL)
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT name FROM sqlite_master WHERE name = 'zoolab_version'").fetchall() == []
    assert _zoolab(tmp_path, "app.cli", "db", "upgrade").returncode == 0
    current = _zoolab(tmp_path, "app.cli", "db", "current")
    assert f"revision {migrate.head()}; this zoolab's: {migrate.head()}" in current.stdout
