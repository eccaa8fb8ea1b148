"""The REST API in-process on a real database, SQLite and PostgreSQL: validation,
listing, 404/409 rules."""

import subprocess
import sys

import pytest

from app import queue
from app.db import get_engine
from tests.stack import REPO
from trainer.zoo import PRESETS

pytestmark = pytest.mark.both_databases


def _create(client, **body):
    return client.post("/runs", json={"model": "mnist-logreg", **body})


def test_batch_size_one_is_fine_without_batchnorm(client):
    assert _create(client, batch_size=1).status_code == 201


def _total(client) -> int:
    return client.get("/runs").json()["total"]


def test_create_fills_preset_defaults_and_keeps_overrides(client):
    r = _create(client, epochs=3, lr=0.01, name="first try")
    assert r.status_code == 201, r.text
    run = r.json()
    assert run["status"] == "queued" and run["queue_position"] == 1
    assert run["params"] == 7850 and run["dataset"] == "mnist" and run["epochs_total"] == 3
    config = run["config"]
    assert config["epochs"] == 3 and config["lr"] == 0.01 and config["name"] == "first try"
    defaults = PRESETS["mnist-logreg"].defaults
    for key in ("batch_size", "optimizer", "scheduler", "normalize", "augment"):
        assert config[key] == defaults[key]
    assert client.get(f"/runs/{run['id']}").json()["config"] == config


def _error_fields(response) -> list[str]:
    return [".".join(str(p) for p in e["loc"]) for e in response.json()["detail"]]


@pytest.mark.parametrize("body, field", [
    ({"epochs": 0}, "body.epochs"),
    ({"epochs": 1001}, "body.epochs"),
    ({"epochs": "ten"}, "body.epochs"),
    ({"epochs": 2.5}, "body.epochs"),
    ({"epochs": True}, "body.epochs"),
    ({"lr": 0}, "body.lr"),
    ({"lr": -0.1}, "body.lr"),
    ({"batch_size": 0}, "body.batch_size"),
    ({"batch_size": 65537}, "body.batch_size"),
    ({"optimizer": "adamax"}, "body.optimizer"),
    ({"scheduler": "cosine"}, "body.scheduler"),
    ({"epoch": 3}, "body.epoch"),  # a typo is an error, never silently ignored
    ({"name": ""}, "body.name"),
    ({"name": "a\x00b"}, "body.name"),  # PostgreSQL text cannot hold a NUL
    ({"seed": -1}, "body.seed"),
    ({"augment": "autoaugment"}, "body"),  # CIFAR-10 augmentation on MNIST
    ({"dataset": "cifar10"}, "body.layers.1"),  # a 3-channel dataset for an MNIST network: 3072 features
    ({"train_subset": 1}, "body.train_subset"),
    ({"grad_clip": 0}, "body.grad_clip"),
    ({"model": "mnist-3fc-2bn-51k", "batch_size": 1}, "body.batch_size"),  # BatchNorm needs 2 images a batch
])
def test_bad_input_is_a_422_naming_the_field_and_stores_nothing(client, body, field):
    r = _create(client, **body)
    assert r.status_code == 422, r.text
    assert field in _error_fields(r)
    assert _total(client) == 0


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_lr_is_refused(client, literal):
    r = client.post("/runs", content='{"model": "mnist-logreg", "lr": %s}' % literal,
                    headers={"content-type": "application/json"})
    assert r.status_code == 422 and "body.lr" in _error_fields(r)
    assert _total(client) == 0


def test_unknown_model_lists_valid_ids(client):
    r = client.post("/runs", json={"model": "mnist-resnet"})
    assert r.status_code == 422
    (error,) = r.json()["detail"]
    assert error["loc"] == ["body", "model"]
    assert "unknown model 'mnist-resnet'" in error["msg"]
    assert all(preset_id in error["msg"] for preset_id in PRESETS)


def test_missing_model_and_malformed_json(client):
    assert "body.model" in _error_fields(client.post("/runs", json={"epochs": 1}))
    r = client.post("/runs", content="{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422


def test_unknown_ids_are_404(client):
    for method, path in [("get", "/runs/999"), ("get", "/runs/999/metrics"), ("post", "/runs/999/cancel"),
                         ("post", "/runs/999/retry"), ("delete", "/runs/999"), ("get", "/runs/999/artifacts"),
                         ("get", "/runs/999/checkpoint"), ("get", "/runs/999/events")]:
        r = getattr(client, method)(path)
        assert r.status_code == 404, (method, path, r.text)
        assert "run 999 not found" in r.json()["detail"]
    assert client.get("/runs/abc").status_code == 422


def test_list_filters_sorts_and_paginates(client):
    for i in range(5):
        assert _create(client, name=f"logreg {i}").status_code == 201
    assert client.post("/runs", json={"model": "cifar-conv5-pool-fc-2k", "name": "tiny conv"}).status_code == 201
    page = client.get("/runs", params={"limit": 2}).json()
    assert page["total"] == 6 and [r["id"] for r in page["items"]] == [6, 5]  # newest first
    page2 = client.get("/runs", params={"limit": 2, "offset": 2}).json()
    assert [r["id"] for r in page2["items"]] == [4, 3]
    assert [r["id"] for r in client.get("/runs", params={"dataset": "cifar10"}).json()["items"]] == [6]
    assert client.get("/runs", params={"model": "mnist-logreg"}).json()["total"] == 5
    assert client.get("/runs", params={"q": "conv"}).json()["total"] == 1
    assert client.get("/runs", params={"status": "running"}).json()["total"] == 0
    by_params = client.get("/runs", params={"sort": "params", "order": "asc"}).json()["items"]
    assert by_params[0]["model"] == "cifar-conv5-pool-fc-2k"
    assert client.get("/runs", params={"status": "sleeping"}).status_code == 422
    assert client.get("/runs", params={"sort": "password"}).status_code == 422
    item = page["items"][0]
    for key in ("params", "best_test_acc", "final_test_acc", "epochs_done", "total_seconds"):
        assert key in item


def test_cancel_delete_and_retry_rules(client):
    queued = _create(client).json()["id"]
    running = _create(client).json()["id"]
    # Make `running` really running: claim it as a worker would (the oldest first).
    engine = get_engine()
    assert queue.claim(engine, "w1").run_id == queued
    lease = queue.claim(engine, "w1")
    assert lease.run_id == running
    assert client.delete(f"/runs/{running}").status_code == 409
    r = client.post(f"/runs/{running}/cancel")
    assert r.status_code == 200 and r.json()["cancel_requested"] and r.json()["status"] == "running"
    assert lease.heartbeat() is True  # the worker learns it must stop
    assert lease.end("cancelled")
    assert client.post(f"/runs/{running}/cancel").status_code == 409
    third = _create(client).json()["id"]
    assert client.post(f"/runs/{third}/cancel").json()["status"] == "cancelled"  # queued: at once
    assert client.post(f"/runs/{third}/retry").json()["status"] == "queued"
    assert client.post(f"/runs/{queued}/retry").status_code == 409  # running runs are not retried
    assert client.delete(f"/runs/{third}").status_code == 204
    assert client.get(f"/runs/{third}").status_code == 404


def test_zoo_lists_every_preset_with_its_parameter_count(client):
    zoo = client.get("/zoo").json()
    assert [p["id"] for p in zoo] == list(PRESETS)
    by_id = {p["id"]: p for p in zoo}
    assert by_id["mnist-3fc-2bn-51k"]["params"] == 51_610
    assert by_id["cifar-resnet-6.6m"]["params"] == 6_575_370
    assert by_id["mnist-logreg"]["notes_acc"] == pytest.approx(0.9215)
    options = client.get("/zoo/options").json()
    assert "adam" in options["optimizers"] and options["limits"]["epochs"] == [1, 1000]
    assert options["layers"]["conv"] == "conv IN OUT K [pad=P] [stride=S]"  # the layer editor's help


def test_server_never_imports_torch():
    code = "import sys, app.main, app.cli; assert 'torch' not in sys.modules, 'app imported torch'"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_openapi_documents_the_runs_api(client):
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/runs", "/runs/{run_id}", "/runs/{run_id}/metrics", "/runs/{run_id}/cancel",
                 "/runs/{run_id}/events", "/workers", "/zoo"):
        assert path in paths
