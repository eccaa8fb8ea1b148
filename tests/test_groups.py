"""Is the difference real (issue 10): config keys as filters and sort orders (an unknown key is a
422 listing the valid ones), seeds queued as a group, group statistics and the Welch verdict
checked against figures computed here from the runs' own rows, the reproduction table.

    .venv/bin/python -m pytest tests/test_groups.py -q
"""

import csv
import io
import math
import statistics

import pytest
from scipy import stats

from trainer.zoo import PRESETS

SMALL = {"epochs": 1, "train_subset": 1500, "test_subset": 2000}


def _post(client, **body):
    r = client.post("/runs", json={"model": "mnist-logreg", **body})
    assert r.status_code == 201, r.text
    return r.json()


def test_seeds_queue_a_group_that_differs_only_in_seed(client):
    first = _post(client, seeds=3, lr=0.01, name="three seeds")
    ids = first["run_ids"]
    assert len(ids) == 3 and first["id"] == ids[0]
    runs = [client.get(f"/runs/{i}").json() for i in ids]
    assert [r["config"]["seed"] for r in runs] == [0, 1, 2]
    assert len({r["group_key"] for r in runs}) == 1 and all(r["name"] == "three seeds" for r in runs)
    strip = [{k: v for k, v in r["config"].items() if k != "seed"} for r in runs]
    assert strip[0] == strip[1] == strip[2]
    listed = _post(client, seeds=[7, 11], lr=0.01)
    assert [client.get(f"/runs/{i}").json()["config"]["seed"] for i in listed["run_ids"]] == [7, 11]
    assert listed["group_key"] == first["group_key"]  # same config, other seeds: the same group
    other = _post(client, lr=0.02)
    assert other["group_key"] != first["group_key"]
    for body, message in [({"seeds": 3, "seed": 1}, "either seed or seeds"), ({"seeds": 0}, "1 to 20"),
                          ({"seeds": 21}, "1 to 20"), ({"seeds": [1, 1]}, "repeats a seed"),
                          ({"seeds": [-1]}, "greater than or equal to 0"), ({"seeds": "3"}, "")]:
        r = client.post("/runs", json={"model": "mnist-logreg", **body})
        assert r.status_code == 422 and message in r.text, (body, r.text)
    assert client.get("/runs").json()["total"] == 6


def test_a_seed_given_alone_is_the_runs_seed(client):
    """A re-run with a new seed sends `seed` without `seeds`: it must be kept, not reset to 0."""
    run = _post(client, seed=5)
    assert run["config"]["seed"] == 5 and client.get(f"/runs/{run['id']}").json()["config"]["seed"] == 5
    assert _post(client)["config"]["seed"] == 0


def test_config_keys_filter_and_sort_and_unknown_ones_are_refused(client):
    for lr, batch, optimizer in [(0.001, 64, "adam"), (0.005, 128, "sgd"), (0.01, 256, "adam"), (0.05, 64, "adamw")]:
        _post(client, lr=lr, batch_size=batch, optimizer=optimizer)
    _post(client, lr=0.001, grad_clip=0.5)

    def ids(**params):
        r = client.get("/runs", params=params)
        assert r.status_code == 200, r.text
        return [run["id"] for run in r.json()["items"]]

    assert ids(**{"config.lr": "0.001"}) == [5, 1]
    assert ids(**{"config.lr": "0.004..0.02"}) == [3, 2]
    assert ids(**{"config.lr": "..0.005"}) == [5, 2, 1]
    assert ids(**{"config.batch_size": "64"}) == [4, 1]
    assert ids(**{"config.optimizer": "adam,adamw"}) == [5, 4, 3, 1]
    assert ids(**{"config.grad_clip": "none"}) == [4, 3, 2, 1]
    assert ids(**{"config.grad_clip": "0.5"}) == [5]
    assert ids(**{"config.lr": "0.001", "config.grad_clip": "none"}) == [1]
    assert ids(sort="config.lr", order="asc") == [1, 5, 2, 3, 4]
    assert ids(sort="config.batch_size", order="desc") == [3, 5, 2, 4, 1]  # ties: newest first
    for params, where in [({"lr": "0.001"}, "lr"), ({"config.nope": "1"}, "config.nope"),
                          ({"config.lr": "fast"}, "config.lr"), ({"config.lr": ".."}, "config.lr"),
                          ({"config.lr": "nan"}, "config.lr"), ({"sort": "config.nope"}, "sort")]:
        r = client.get("/runs", params=params)
        assert r.status_code == 422, (params, r.text)
        detail = r.json()["detail"][0]
        assert detail["loc"] == ["query", where], detail
    unknown = client.get("/runs", params={"lr": "0.001"}).json()["detail"][0]["msg"]
    assert "unknown filter 'lr'" in unknown and "config.lr" in unknown and "config.batch_size" in unknown
    # The CSV holds the config columns and follows the table's filters and order.
    rows = list(csv.DictReader(io.StringIO(client.get("/runs.csv", params={
        "config.optimizer": "adam", "sort": "config.lr", "order": "desc"}).text)))
    assert [int(r["id"]) for r in rows] == [3, 5, 1]
    assert [r["config.lr"] for r in rows] == ["0.01", "0.001", "0.001"]
    assert rows[1]["config.grad_clip"] == "0.5" and rows[0]["config.batch_size"] == "256"
    assert rows[0]["changes"] == "batch_size 256; lr 0.01"
    assert client.get("/runs.csv", params={"lr": "1"}).status_code == 422


def _welch_by_hand(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """Welch's interval for mean(b) - mean(a), from the textbook formulas."""
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    diff = statistics.fmean(b) - statistics.fmean(a)
    half = stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    return diff, diff - half, diff + half


@pytest.mark.timeout(400)
def test_group_statistics_and_verdict_match_the_runs_own_rows(client, spawn_worker):
    a = _post(client, seeds=3, **SMALL, lr=0.005)
    b = _post(client, seeds=3, **SMALL, lr=0.3, optimizer="sgd", momentum=0.0)  # a worse recipe
    assert spawn_worker("w-groups", "--until-empty").wait(timeout=360) == 0
    groups = client.get("/groups", params={"sort": "best_mean", "order": "desc"}).json()
    assert groups["total"] == 2
    by_key = {g["key"]: g for g in groups["items"]}
    for posted in (a, b):
        runs = [client.get(f"/runs/{i}").json() for i in posted["run_ids"]]
        assert all(r["status"] == "finished" for r in runs)
        best = [r["best_test_acc"] for r in runs]
        final = [r["final_test_acc"] for r in runs]
        group = by_key[posted["group_key"]]
        assert group["n"] == 3 and group["seeds"] == [0, 1, 2] and group["run_ids"] == posted["run_ids"]
        assert group["best_test_acc"]["mean"] == pytest.approx(statistics.fmean(best))
        assert group["best_test_acc"]["std"] == pytest.approx(statistics.stdev(best))
        assert group["final_test_acc"]["mean"] == pytest.approx(statistics.fmean(final))
        assert group["total_seconds"]["mean"] == pytest.approx(statistics.fmean(r["total_seconds"] for r in runs))
        detail = client.get(f"/groups/{posted['group_key']}").json()
        assert [r["id"] for r in detail["runs"]] == posted["run_ids"]
        epoch1 = [client.get(f"/runs/{i}/metrics").json()["epochs"][0]["test_acc"] for i in posted["run_ids"]]
        assert detail["curve"][0]["epoch"] == 1
        assert detail["curve"][0]["test_acc"]["mean"] == pytest.approx(statistics.fmean(epoch1))
        assert detail["curve"][0]["test_acc"]["std"] == pytest.approx(statistics.stdev(epoch1))
    ordered = [g["best_test_acc"]["mean"] for g in groups["items"]]
    assert ordered == sorted(ordered, reverse=True)

    comparison = client.get("/groups/compare", params={"a": a["group_key"], "b": b["group_key"]}).json()
    best_a = [client.get(f"/runs/{i}").json()["best_test_acc"] for i in a["run_ids"]]
    best_b = [client.get(f"/runs/{i}").json()["best_test_acc"] for i in b["run_ids"]]
    diff, low, high = _welch_by_hand(best_a, best_b)
    verdict = comparison["verdict"]
    assert verdict["diff"] == pytest.approx(diff) and verdict["low"] == pytest.approx(low)
    assert verdict["high"] == pytest.approx(high)
    assert verdict["real"] == (not low <= 0 <= high)
    assert verdict["text"].startswith("within seed noise" if low <= 0 <= high else ("better" if diff > 0 else "worse"))
    assert [c["text"] for c in comparison["changes"]] == ["lr 0.005 → 0.3", "momentum 0.9 → 0", "optimizer adam → sgd"]

    # the same config compared with itself: no difference, within seed noise
    same = client.get("/groups/compare", params={"a": a["group_key"], "b": a["group_key"]}).json()["verdict"]
    assert same["diff"] == 0 and same["low"] < 0 < same["high"] and same["text"].startswith("within seed noise")
    assert client.get("/groups/compare", params={"a": a["group_key"], "b": "0" * 16}).status_code == 404
    assert client.get("/groups/not-a-key").status_code == 422


def test_the_reproduction_table_and_its_missing_seeds(client):
    recipe = {"dataset": "mnist", "epochs": 1, "train_subset": 1000}
    table = client.get("/reproduction", params=recipe).json()
    mnist = [p for p in sorted(PRESETS.values(), key=lambda p: p.order) if p.dataset == "mnist"]
    assert [row["preset"] for row in table] == [p.id for p in mnist]
    assert all(row["missing_seeds"] == [0, 1, 2] and row["n"] == 0 and row["reproduced"] is None for row in table)
    queued = client.post("/reproduction/seeds", json={**recipe, "seeds": 2, "presets": ["mnist-logreg"]})
    assert queued.status_code == 201, queued.text
    ids = queued.json()["run_ids"]
    assert len(ids) == 2
    runs = [client.get(f"/runs/{i}").json() for i in ids]
    assert [r["config"]["seed"] for r in runs] == [0, 1] and {r["config"]["epochs"] for r in runs} == {1}
    row = client.get("/reproduction", params=recipe).json()[0]
    assert row["missing_seeds"] == [2] and row["key"] == runs[0]["group_key"]
    assert client.get("/reproduction", params={**recipe, "seeds": 4}).json()[0]["missing_seeds"] == [2, 3]
    again = client.post("/reproduction/seeds", json={**recipe, "seeds": 2, "presets": ["mnist-logreg"]}).json()
    assert again["run_ids"] == []  # nothing missing any more
    bad = client.post("/reproduction/seeds", json={**recipe, "presets": ["cifar-vgg-179k"]})
    assert bad.status_code == 422 and "cifar-vgg-179k" in bad.text
    markdown = client.get("/reproduction.md", params=recipe).text
    assert markdown.splitlines()[0].startswith("| preset | params | notes acc %")
    assert "| mnist-logreg | 7850 | 92.15 | 0 |" in markdown
    rows = list(csv.DictReader(io.StringIO(client.get("/reproduction.csv", params=recipe).text)))
    assert rows[0]["preset"] == "mnist-logreg" and rows[0]["notes acc %"] == "92.15"
    assert client.get("/reproduction", params={**recipe, "bogus": 1}).status_code == 422
