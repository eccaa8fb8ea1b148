"""A network is data in a run (issue 9): POST /runs takes `layers`, a `parent`, names a run by
its change; saved presets launch like the zoo's; the lineage tree carries each step's change
and effect. One real worker trains the runs whose figures the lineage shows.

    .venv/bin/python -m pytest tests/test_forking.py -q
"""

import io

import pytest
import torch

from app.lineage import diff, label, layer_changes
from tests.stack import QUICK_FULL_TEST
from trainer.zoo import PRESETS

MLP = list(PRESETS["mnist-3fc-51k"].layers)  # flatten, linear 784 60, relu, linear 60 60, relu, linear 60 10
WITH_BN = MLP[:2] + ["bn1d 60"] + MLP[2:]


def test_layer_changes_name_each_edit_by_its_position():
    assert [c.text for c in layer_changes(MLP, WITH_BN)] == ["bn1d 60 after layer 2"]
    assert [c.text for c in layer_changes(WITH_BN, MLP)] == ["removed layer 3 (bn1d 60)"]
    narrower = ["flatten", "linear 784 40", "relu", "linear 40 60", "relu", "linear 60 10"]
    assert [c.text for c in layer_changes(MLP, narrower)] == [
        "layer 2: linear 784 60 → linear 784 40", "layer 4: linear 60 60 → linear 40 60"]
    assert [c.text for c in layer_changes(["flatten", "linear 784 10"], ["bn2d 1", "flatten", "linear 784 10"])] == [
        "bn2d 1 before layer 1"]
    # the notes' bn1 → bn2 step moves a batch-norm: two edits, not four
    bn1, bn2 = list(PRESETS["mnist-3fc-bn1-51k"].layers), list(PRESETS["mnist-3fc-bn2-51k"].layers)
    assert [c.text for c in layer_changes(bn1, bn2)] == ["removed layer 3 (bn1d 60)", "bn1d 60 after layer 5"]
    # canonical forms: spacing and default options are not changes
    assert layer_changes(["maxpool 2 stride=2", "conv 3 8 3  pad=0"], ["maxpool 2", "conv 3 8 3"]) == []


def test_config_changes_skip_labels_and_seed():
    before = {"model": "a", "name": "x", "seed": 0, "lr": 0.005, "layers": MLP, "grad_clip": None}
    after = {"model": "b", "name": "y", "seed": 3, "lr": 0.001, "layers": WITH_BN, "grad_clip": 0.1}
    changes = diff(before, after)
    assert [c.text for c in changes] == ["bn1d 60 after layer 2", "grad_clip none → 0.1", "lr 0.005 → 0.001"]
    assert label(changes, limit=2) == "bn1d 60 after layer 2, grad_clip 0.1 and 1 more"


def test_a_run_with_its_own_network_stores_it_with_its_exact_parameter_count(client):
    r = client.post("/runs", json={"model": "mnist-3fc-51k", "layers": WITH_BN, "epochs": 1})
    assert r.status_code == 201, r.text
    run = r.json()
    assert run["config"]["layers"] == WITH_BN and run["params"] == 51_490  # the bn1 preset's count
    assert run["name"] == "mnist-3fc-51k · bn1d 60 after layer 2, epochs 1"
    assert run["changes"] == ["bn1d 60 after layer 2", "epochs 1"]
    assert run["notes_acc"] is None  # the notes' figure is for the preset's network, not this one
    same = client.post("/runs", json={"model": "mnist-3fc-51k"}).json()
    assert same["config"]["layers"] == MLP and same["params"] == 51_370 and same["changes"] == []
    assert same["notes_acc"] == PRESETS["mnist-3fc-51k"].notes_acc and same["name"] == "mnist-3fc-51k"


def test_a_refused_network_queues_nothing(client):
    r = client.post("/runs", json={"model": "mnist-logreg", "layers": ["flatten", "linear 787 70", "relu",
                                                                       "linear 70 10"]})
    assert r.status_code == 422
    assert r.json()["detail"] == [{"loc": ["body", "layers", 1], "msg": "layer 2 expects 787 features, gets 784",
                                   "type": "value_error"}]
    r = client.post("/runs", json={"model": "mnist-logreg", "layers": ["flatten", "linear 784 60", "linear 60 60"]})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "layers", 2]
    assert "mnist has 10 classes" in r.json()["detail"][0]["msg"]
    r = client.post("/runs", json={"model": "mnist-logreg", "layers": []})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][:2] == ["body", "layers"]
    assert client.get("/runs").json()["total"] == 0


def test_a_derived_run_records_its_parent_and_is_named_by_its_change(client):
    parent = client.post("/runs", json={"model": "mnist-3fc-51k", "name": "baseline"}).json()
    child = client.post("/runs", json={**parent["config"], "name": None, "seed": None, "layers": WITH_BN,
                                       "lr": 0.001, "parent": parent["id"]})
    assert child.status_code == 201, child.text
    child = child.json()
    assert child["parent_id"] == parent["id"]
    assert child["name"] == "mnist-3fc-51k · bn1d 60 after layer 2, lr 0.001"
    changes = client.get(f"/runs/{child['id']}/changes").json()
    assert changes["parent"]["id"] == parent["id"]
    assert [c["text"] for c in changes["edge"]["changes"]] == ["bn1d 60 after layer 2", "lr 0.005 → 0.001"]
    assert changes["edge"]["delta"]["params"] == 120
    assert client.post("/runs", json={"model": "mnist-3fc-51k", "parent": 10**9}).status_code == 422
    # Deleting the parent keeps the child, without a parent.
    assert client.delete(f"/runs/{parent['id']}").status_code == 204
    assert client.get(f"/runs/{child['id']}").json()["parent_id"] is None


def test_saved_presets_launch_by_id_and_runs_keep_their_layers(client):
    source = client.post("/runs", json={"model": "mnist-3fc-51k", "layers": WITH_BN, "lr": 0.002}).json()
    saved = client.post("/presets", json={"name": "My BN net", "from_run": source["id"], "description": "bn1"})
    assert saved.status_code == 201, saved.text
    preset = saved.json()
    assert preset["id"] == "my-bn-net" and preset["source"] == "user" and preset["params"] == 51_490
    assert preset["defaults"]["lr"] == 0.002 and preset["layers"] == WITH_BN
    zoo = {p["id"]: p for p in client.get("/zoo").json()}
    assert zoo["my-bn-net"]["source"] == "user" and zoo["mnist-logreg"]["source"] == "notes"
    run = client.post("/runs", json={"model": "my-bn-net", "epochs": 1}).json()
    assert run["config"]["layers"] == WITH_BN and run["config"]["lr"] == 0.002 and run["changes"] == ["epochs 1"]
    # a taken id, a notes' preset, a bad name: refused, with the reason
    assert client.post("/presets", json={"name": "my bn net", "from_run": source["id"]}).status_code == 409
    assert client.post("/presets", json={"name": "x", "id": "mnist-logreg", "from_run": source["id"]}).status_code == 409
    assert client.post("/presets", json={"name": "!!!", "from_run": source["id"]}).status_code == 422
    assert client.post("/presets", json={"name": "ok", "from_run": 10**9}).status_code == 422
    assert client.patch("/presets/mnist-logreg", json={"name": "mine"}).status_code == 404
    renamed = client.patch("/presets/my-bn-net", json={"name": "Batch-norm after fc1"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "Batch-norm after fc1"
    assert client.delete("/presets/my-bn-net").status_code == 204
    assert client.get(f"/runs/{run['id']}").json()["config"]["layers"] == WITH_BN  # kept
    r = client.post("/runs", json={"model": "my-bn-net"})
    assert r.status_code == 422 and "unknown model 'my-bn-net'" in r.json()["detail"][0]["msg"]


@pytest.mark.timeout(300)
def test_the_lineage_tree_carries_each_change_and_its_effect(client, spawn_worker):
    base = client.post("/runs", json={**QUICK_FULL_TEST, "model": "mnist-3fc-51k", "name": "base"}).json()
    child = client.post("/runs", json={**QUICK_FULL_TEST, "model": "mnist-3fc-51k", "layers": WITH_BN,
                                       "parent": base["id"]}).json()
    assert spawn_worker("w-lineage", "--until-empty").wait(timeout=240) == 0
    runs = {r["id"]: r for r in client.get("/runs").json()["items"]}
    assert all(r["status"] == "finished" for r in runs.values()), runs
    tree = client.get("/lineage", params={"dataset": "mnist"}).json()
    presets = [n["id"] for n in tree["nodes"] if n["kind"] == "preset"]
    assert presets == [p.id for p in sorted(PRESETS.values(), key=lambda p: p.order) if p.dataset == "mnist"]
    edges = {(e["source"]["kind"], e["source"]["id"], e["target"]["id"]): e for e in tree["edges"]}
    trunk = edges[("preset", "mnist-3fc-51k", "mnist-3fc-bn1-51k")]
    assert trunk["label"] == "bn1d 60 after layer 2"  # the notes' own step
    assert trunk["delta"]["best_test_acc"] == pytest.approx(0.9768 - 0.9703)
    step = edges[("run", base["id"], child["id"])]
    assert step["label"] == "bn1d 60 after layer 2" and step["delta"]["params"] == 120
    best = runs[child["id"]]["best_test_acc"] - runs[base["id"]]["best_test_acc"]
    assert step["delta"]["best_test_acc"] == pytest.approx(best)
    assert step["delta"]["total_seconds"] == pytest.approx(runs[child["id"]]["total_seconds"]
                                                          - runs[base["id"]]["total_seconds"])
    root = edges[("preset", "mnist-3fc-51k", base["id"])]
    assert root["delta"]["best_test_acc"] == pytest.approx(runs[base["id"]]["best_test_acc"] - 0.9703)
    # The worker trained the run's own network: its checkpoint holds it.
    checkpoint = client.get(f"/runs/{child['id']}/checkpoint")
    saved = torch.load(io.BytesIO(checkpoint.content), weights_only=True)
    assert saved["layers"] == WITH_BN and "2.running_mean" in saved["state_dict"]
