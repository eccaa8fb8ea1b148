"""A run's name, notes and tags (issue 13): PATCH /runs/{id} round trip, refusals that name the
problem, the tag filter (several tags: all of them), tags and notes in the CSV and in the events.

    .venv/bin/python -m pytest tests/test_labels.py -q
"""

import csv
import io

import pytest

from app.labels import MAX_NOTES, MAX_TAGS

pytestmark = pytest.mark.both_databases


def _post(client, **body) -> dict:
    r = client.post("/runs", json={"model": "mnist-logreg", "epochs": 1, **body})
    assert r.status_code == 201, r.text
    return r.json()


def _ids(client, **params) -> list[int]:
    r = client.get("/runs", params=params)
    assert r.status_code == 200, r.text
    return [run["id"] for run in r.json()["items"]]


def test_labels_round_trip_and_tags_filter(client):
    a, b, c = (_post(client)["id"] for _ in range(3))
    assert client.get(f"/runs/{a}").json()["tags"] == [] and client.get(f"/runs/{a}").json()["notes"] == ""

    r = client.patch(f"/runs/{a}", json={"name": "baseline lr", "notes": "the notes' step 4\nsecond line",
                                         "tags": ["baseline", "lr_sweep"]})
    assert r.status_code == 200, r.text
    assert (r.json()["name"], r.json()["tags"]) == ("baseline lr", ["baseline", "lr_sweep"])
    run = client.get(f"/runs/{a}").json()
    assert run["name"] == "baseline lr" and run["config"]["name"] == "baseline lr"
    assert run["notes"] == "the notes' step 4\nsecond line" and run["tags"] == ["baseline", "lr_sweep"]
    # What is left out stays.
    assert client.patch(f"/runs/{a}", json={"notes": "edited"}).json()["tags"] == ["baseline", "lr_sweep"]
    assert client.patch(f"/runs/{b}", json={"tags": ["lr_sweep"]}).status_code == 200
    assert client.patch(f"/runs/{c}", json={"tags": ["lrxsweep", "baseline-2"]}).status_code == 200

    assert _ids(client, tag="lr_sweep") == [b, a]        # `_` is no wildcard: c's lrxsweep is not matched
    assert _ids(client, tag=["lr_sweep", "baseline"]) == [a]  # several: all of them
    assert _ids(client, tag="baseline") == [a]            # not baseline-2
    assert _ids(client, tag="base") == []
    assert _ids(client, tag="baseline", sort="id", order="asc", **{"config.epochs": "1"}) == [a]
    assert client.get("/runs/ids", params={"tag": "lr_sweep"}).json() == {"ids": [a, b], "total": 2}
    groups = client.get("/groups", params={"tag": "lr_sweep"}).json()
    assert groups["total"] == 1 and groups["items"][0]["run_ids"] == [a, b]

    rows = {int(r["id"]): r for r in csv.DictReader(io.StringIO(client.get("/runs.csv", params={"tag": "lr_sweep"}).text))}
    assert set(rows) == {a, b}
    assert rows[a]["tags"] == "baseline lr_sweep" and rows[a]["notes"] == "edited" and rows[b]["tags"] == "lr_sweep"

    # Removing every tag; the run leaves the filter.
    assert client.patch(f"/runs/{b}", json={"tags": []}).json()["tags"] == []
    assert _ids(client, tag="lr_sweep") == [a]


def test_an_edit_is_an_event_with_the_whole_run(client):
    from sqlmodel import Session

    from app.db import get_engine
    from app.events import fetch

    run = _post(client)
    since = client.get("/runs").json()["last_event_id"]
    client.patch(f"/runs/{run['id']}", json={"tags": ["seen"], "notes": "why"})
    with Session(get_engine()) as session:
        items, _ = fetch(session, since)
    assert [(i.kind, i.data["id"], i.data["status"], i.data["tags"], i.data["notes"]) for i in items] == [
        ("status", run["id"], "queued", ["seen"], "why")]


@pytest.mark.parametrize(("body", "where", "message"), [
    ({"tags": ["Baseline"]}, ["body", "tags", 0], "'Baseline' is not a tag (write 'baseline')"),
    ({"tags": ["two words"]}, ["body", "tags", 0], "a tag is 1 to 32 characters of a-z, 0-9"),
    ({"tags": ["-x"]}, ["body", "tags", 0], "starting with a letter or a digit"),
    ({"tags": ["x" * 33]}, ["body", "tags", 0], "is not a tag"),
    ({"tags": ["a", "b", "a"]}, ["body", "tags"], "tags repeats 'a'"),
    ({"tags": [f"t{i}" for i in range(MAX_TAGS + 1)]}, ["body", "tags"], f"at most {MAX_TAGS}"),
    ({"tags": "a"}, ["body", "tags"], "list"),
    ({"notes": "x" * (MAX_NOTES + 1)}, ["body", "notes"], f"at most {MAX_NOTES} characters"),
    ({"notes": "a\x00b"}, ["body", "notes"], "NUL"),
    ({"name": "  "}, ["body", "name"], "at least one visible character"),
    ({"name": "x" * 201}, ["body", "name"], "at most 200 characters"),
    ({"status": "finished"}, ["body", "status"], "Extra inputs are not permitted"),
])
def test_a_bad_edit_is_refused_with_its_reason(client, body, where, message):
    run = _post(client, name="kept")
    r = client.patch(f"/runs/{run['id']}", json=body)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"][0]
    assert detail["loc"] == where and message in detail["msg"], detail
    after = client.get(f"/runs/{run['id']}").json()
    assert (after["name"], after["notes"], after["tags"]) == ("kept", "", [])


def test_tag_filter_and_missing_run_refusals(client):
    assert client.patch("/runs/999", json={"notes": "x"}).status_code == 404
    r = client.get("/runs", params={"tag": "Bad Tag"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "tag"]
    assert "is not a tag" in r.json()["detail"][0]["msg"]
    assert client.get("/runs", params={"tag": [f"t{i}" for i in range(MAX_TAGS + 1)]}).status_code == 422
    assert client.get("/runs", params={"group": "xyz"}).status_code == 422
