"""Many runs at once (issue 13): POST /runs/bulk cancels, retries, tags, untags and deletes,
answering what was done and what was skipped with why; GET /runs/ids lists every run matching
the table's filters; the limits are refusals that name the problem.

    .venv/bin/python -m pytest tests/test_bulk.py -q
"""

import pytest

from app.api.bulk import BULK_MAX
from app.labels import MAX_TAGS
from tests.stack import query

pytestmark = pytest.mark.both_databases


def _bulk(client, **body) -> dict:
    r = client.post("/runs/bulk", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def _statuses(client, ids) -> list[str]:
    return [client.get(f"/runs/{i}").json()["status"] for i in ids]


def test_bulk_actions_say_what_was_done_and_why_not(client, database_url, tmp_path):
    ids = [client.post("/runs", json={"model": "mnist-logreg", "epochs": 1}).json()["id"] for _ in range(5)]
    a, b, c, d, e = ids
    query(database_url, "UPDATE run SET status = 'running' WHERE id = ?", e)  # as a worker would

    assert _bulk(client, ids=[a, b, 999, a], action="cancel") == {
        "action": "cancel", "done": [a, b], "skipped": [{"id": 999, "reason": "no such run"}]}
    assert _statuses(client, ids) == ["cancelled", "cancelled", "queued", "queued", "running"]
    assert _bulk(client, ids=[a, c], action="retry") == {"action": "retry", "done": [a], "skipped": [
        {"id": c, "reason": "it is queued; only failed or cancelled runs can be retried"}]}
    assert _bulk(client, ids=[b], action="cancel")["skipped"] == [
        {"id": b, "reason": "it is cancelled; only queued or running runs can be cancelled"}]

    assert _bulk(client, ids=ids, action="tag", tags=["sweep", "bn"])["done"] == ids
    assert _bulk(client, ids=[a, b], action="untag", tags=["bn"])["done"] == [a, b]
    assert [client.get(f"/runs/{i}").json()["tags"] for i in (a, c)] == [["sweep"], ["sweep", "bn"]]
    assert client.get("/runs/ids", params={"tag": ["sweep", "bn"]}).json() == {"ids": [c, d, e], "total": 3}
    client.patch(f"/runs/{d}", json={"tags": [f"t{i}" for i in range(MAX_TAGS - 1)]})
    over = _bulk(client, ids=[c, d], action="tag", tags=["one", "two"])
    assert over["done"] == [c] and over["skipped"] == [
        {"id": d, "reason": f"it would hold {MAX_TAGS + 1} tags; a run holds at most {MAX_TAGS}"}]
    assert len(client.get(f"/runs/{d}").json()["tags"]) == MAX_TAGS - 1  # untouched

    artifacts = tmp_path / "artifacts" / str(a)
    artifacts.mkdir(parents=True)
    (artifacts / "model.pt").write_bytes(b"weights")
    deleted = _bulk(client, ids=ids, action="delete")
    assert deleted["done"] == [a, b, c, d] and deleted["skipped"] == [
        {"id": e, "reason": "it is running; cancel it first"}]
    assert [client.get(f"/runs/{i}").status_code for i in ids] == [404, 404, 404, 404, 200]
    assert not artifacts.exists()
    kinds = query(database_url, "SELECT run_id, kind FROM event WHERE kind = 'deleted' ORDER BY id")
    assert kinds == [(i, "deleted") for i in (a, b, c, d)]


def test_a_hundred_runs_deleted_in_one_request(client):
    ids = client.post("/runs", json={"model": "mnist-logreg", "epochs": 1, "seeds": 20}).json()["run_ids"]
    for _ in range(4):
        ids += client.post("/runs", json={"model": "mnist-logreg", "epochs": 2, "seeds": 20}).json()["run_ids"]
    keep = client.post("/runs", json={"model": "mnist-logreg"}).json()["id"]
    matching = client.get("/runs/ids", params={"config.epochs": "1..2"}).json()
    assert matching == {"ids": sorted(ids), "total": 100}
    assert _bulk(client, ids=matching["ids"], action="delete") == {"action": "delete", "done": sorted(ids),
                                                                     "skipped": []}
    assert client.get("/runs").json()["total"] == 1 and client.get(f"/runs/{keep}").status_code == 200


@pytest.mark.parametrize(("body", "where", "message"), [
    ({"ids": [], "action": "delete"}, ["body", "ids"], "at least 1 item"),
    ({"ids": list(range(1, BULK_MAX + 2)), "action": "delete"}, ["body", "ids"], f"at most {BULK_MAX} items"),
    ({"ids": [0], "action": "delete"}, ["body", "ids", 0], "greater than or equal to 1"),
    ({"ids": [1], "action": "explode"}, ["body", "action"], "'cancel', 'delete', 'retry', 'tag' or 'untag'"),
    ({"ids": [1], "action": "tag"}, ["body"], "tag needs `tags`"),
    ({"ids": [1], "action": "tag", "tags": ["Nope"]}, ["body", "tags", 0], "is not a tag"),
    ({"ids": [1], "action": "delete", "tags": ["x"]}, ["body"], "delete takes no `tags`"),
    ({"ids": [1], "action": "delete", "filter": "all"}, ["body", "filter"], "Extra inputs"),
])
def test_a_bad_bulk_request_is_refused_and_changes_nothing(client, body, where, message):
    run = client.post("/runs", json={"model": "mnist-logreg", "epochs": 1}).json()
    r = client.post("/runs/bulk", json=body)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"][0]
    assert detail["loc"] == where and message in detail["msg"], detail
    assert client.get(f"/runs/{run['id']}").json()["status"] == "queued"


def test_ids_follow_the_runs_filters(client):
    for lr in (0.001, 0.01, 0.1):
        client.post("/runs", json={"model": "mnist-logreg", "lr": lr})
    assert client.get("/runs/ids", params={"config.lr": "..0.01"}).json() == {"ids": [1, 2], "total": 2}
    assert client.get("/runs/ids", params={"limit": 1}).json() == {"ids": [1], "total": 3}
    r = client.get("/runs/ids", params={"config.nope": "1"})
    assert r.status_code == 422 and "unknown filter 'config.nope'" in r.json()["detail"][0]["msg"]
