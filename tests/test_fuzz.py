"""Bad input: property-based fuzzing of every operation of the OpenAPI schema
(schemathesis, in-process, on a temporary database), and hand-written hostile requests
against a real `zoolab serve` (real uvicorn URL decoding, real body limit).

    ZOOLAB_DATA_DIR=/work/shared/data ZOOLAB_DOWNLOAD=false .venv/bin/python -m pytest tests/test_fuzz.py -q

Nothing may answer 5xx, every JSON answer must match the schema, and no request may read
a file outside the artifact directory.
"""

import csv
import http.client
import io
import json
import socket
import sqlite3

import hypothesis.strategies as st
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance
from schemathesis.python import asgi

from app.db import get_engine
from app.main import create_app
from app.settings import get_settings
from tests.stack import Stack
from trainer.zoo import PRESETS

# --- schemathesis -----------------------------------------------------------------------

app = create_app()  # the database is chosen per request (get_engine), set by `fuzz_db`
# The schema straight from the app: `from_asgi` would start the app's lifespan (and so open
# a database) at import time, before `fuzz_db` points the settings at a temporary one.
schema = schemathesis.openapi.from_dict(app.openapi())
schema.app, schema.location = app, "/openapi.json"
# The event streams never end; they are tested for real in test_faults.py and test_load.py.
schema = schema.exclude(path_regex=r"events$")
SEEDED_IDS = (1, 2, 3)  # made by `seed` in a fresh database


@schema.hook
def flatmap_path_parameters(context, path_parameters):
    """Half the time aim at a run that exists (and image 0), so routes get past their 404."""
    if not isinstance(path_parameters, dict) or "run_id" not in path_parameters:
        return st.just(path_parameters)
    existing = st.sampled_from(SEEDED_IDS).map(
        lambda i: {**path_parameters, "run_id": i, **({"k": 0} if "k" in path_parameters else {})})
    return st.one_of(st.just(path_parameters), existing)


@schema.hook
def flatmap_body(context, body):
    """Half the time a model id of the zoo, so some generated runs are valid and created."""
    if not isinstance(body, dict) or "model" not in body:
        return st.just(body)
    return st.one_of(st.just(body), st.sampled_from(sorted(PRESETS)).map(lambda m: {**body, "model": m}))

ARTIFACTS = {"class_names": [str(i) for i in range(10)],
             "confusion_matrix": [[5 if i == j else 0 for j in range(10)] for i in range(10)],
             "per_class_acc": [1.0] * 10, "test_acc": 1.0,
             "misclassified": [{"k": 0, "index": 3, "true": 1, "pred": 7}]}
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010800000000"
                    "3a7e9b550000000a49444154789c63600000000200015cd0ad450000000049454e44ae426082")


def _clear_caches() -> None:
    get_settings.cache_clear()
    get_engine.cache_clear()


def seed(db_path, artifact_dir, client) -> list[int]:
    """Three queued runs; run 1 made finished with real artifact files on disk."""
    ids = [client.post("/runs", json={"model": m, "name": n}).json()["id"]
           for m, n in (("mnist-logreg", "seed"), ("cifar-vgg-179k", "Ünïcødé ✓"), ("mnist-3fc-51k", "x" * 200))]
    folder = artifact_dir / str(ids[0])
    folder.mkdir(parents=True)
    (folder / "artifacts.json").write_text(json.dumps(ARTIFACTS))
    (folder / "misclassified-0.png").write_bytes(PNG)
    (folder / "model.pt").write_bytes(b"weights")
    con = sqlite3.connect(db_path)
    con.execute("UPDATE run SET status='finished', has_artifacts=1, has_checkpoint=1, epochs_done=1 "
                "WHERE id=?", (ids[0],))
    con.commit()
    con.close()
    return ids


@pytest.fixture
def fuzz_db(tmp_path):
    """A fresh temporary database and artifact dir for the in-process app, with the seeded
    runs (once per operation: the examples of DELETE may delete them)."""
    root = tmp_path
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ZOOLAB_DATABASE_URL", f"sqlite:///{root / 'runs.db'}")
        mp.setenv("ZOOLAB_ARTIFACT_DIR", str(root / "artifacts"))
        mp.delenv("ZOOLAB_TOKEN", raising=False)
        _clear_caches()
        assert str(root) in get_settings().database_url
        assert seed(root / "runs.db", root / "artifacts", TestClient(app)) == list(SEEDED_IDS)
        yield root
        # schemathesis keeps the app's lifespan (its event loop polls get_engine()) running
        # after a test; end it while the settings still point at the temporary database.
        asgi.shutdown_lifespans()
    _clear_caches()


@pytest.mark.timeout(300)
@schema.parametrize()
@settings(max_examples=30, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                 HealthCheck.function_scoped_fixture])
def test_api_schema(fuzz_db, case):
    assert str(fuzz_db) in get_settings().database_url
    case.call_and_validate(checks=[not_a_server_error, response_schema_conformance])


def test_fuzzing_covers_every_operation_but_the_streams():
    ops = {(op.method.upper(), op.path) for op in (r.ok() for r in schema.get_all_operations())}
    paths = set(app.openapi()["paths"])
    assert {p for _, p in ops} == {p for p in paths if not p.endswith("events")}
    assert ("POST", "/runs") in ops and ("DELETE", "/runs/{run_id}") in ops


# --- hand-written hostile requests against a real server ---------------------------------

SECRET = b"zoolab-secret-outside-artifacts"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real server (no worker) whose run 1 has artifacts, with bait files outside the
    artifact directory that a traversal would reach."""
    root = tmp_path_factory.mktemp("hostile")
    stack = Stack(root, worker=False).start()
    with stack.client() as c:
        for name in ("x.png", "model.pt", "artifacts.json", "secret.txt", "misclassified-0.png"):
            (root / name).write_bytes(SECRET)
            (stack.artifact_dir / name).parent.mkdir(parents=True, exist_ok=True)
            (stack.artifact_dir / name).write_bytes(SECRET)
        (root / "etc").mkdir()
        (root / "etc" / "passwd").write_bytes(SECRET)

        stack.ids = seed(stack.db_path, stack.artifact_dir, c)
    yield stack
    stack.close()


def raw(stack: Stack, method: str, path: str, body: bytes | str | None = None,
        headers: dict | None = None) -> tuple[int, bytes]:
    """Send `path` byte for byte (http.client does not normalise dots or escapes)."""
    conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


RUN_PATHS = ["/runs/{}", "/runs/{}/metrics", "/runs/{}/metrics.csv", "/runs/{}/artifacts",
             "/runs/{}/checkpoint", "/runs/{}/misclassified/0.png", "/runs/{}/events"]
TRAVERSALS = ["..%2F..%2Fetc%2Fpasswd", "..%2F..%2Fsecret.txt", "../../etc/passwd", "..", "%2e%2e",
              "%2e%2e%2f%2e%2e%2fsecret.txt", "..%252F..%252Fsecret.txt", "1%2F..%2F..%2Fsecret.txt",
              "1%00", "..%5C..%5Csecret.txt", "%2Fetc%2Fpasswd", "~", "1;rm", "1%20OR%201=1"]


def test_path_traversal_in_every_path_parameter_is_refused(server):
    for template in RUN_PATHS:
        for bad in TRAVERSALS:
            path = template.format(bad)
            status, body = raw(server, "GET", path)
            assert status in (404, 422), (path, status, body[:200])
            assert SECRET not in body, path
    for bad in TRAVERSALS:  # the state-changing routes too
        for method, template in (("POST", "/runs/{}/cancel"), ("POST", "/runs/{}/retry"), ("DELETE", "/runs/{}")):
            status, body = raw(server, method, template.format(bad))
            assert status in (404, 405, 422), (method, bad, status)


@pytest.mark.parametrize("path", [
    "/runs/1/misclassified/..%2F..%2Fx.png", "/runs/1/misclassified/..%2F..%2F..%2Fx.png",
    "/runs/1/misclassified/../../x.png", "/runs/1/misclassified/%2e%2e%2f%2e%2e%2fx.png",
    "/runs/1/misclassified/0.png%00", "/runs/1/misclassified/0%2F..%2F..%2Fx.png",
    "/runs/1/misclassified/-1.png", "/runs/1/misclassified/1e3.png", "/runs/1/misclassified/10001.png",
    "/runs/1/misclassified/0.PNG", "/runs/1/misclassified/0.png.pt", "/runs/1/checkpoint/..%2F..%2Fsecret.txt",
    "/runs/1/artifacts/..%2F..%2Fsecret.txt", "/static/..%2F..%2Fsecret.txt", "/static/%2e%2e/%2e%2e/secret.txt",
    "/static/../../etc/passwd", "/static/vendor/plotly.min.js/..%2F..%2F..%2Fsecret.txt",
])
def test_file_downloads_never_leave_the_artifact_dir(server, path):
    status, body = raw(server, "GET", path)
    assert status in (404, 422), (status, body[:200])
    assert SECRET not in body


def test_file_downloads_of_a_real_run_work(server):
    run_id = server.ids[0]
    assert raw(server, "GET", f"/runs/{run_id}/misclassified/0.png") == (200, PNG)
    assert raw(server, "GET", f"/runs/{run_id}/checkpoint") == (200, b"weights")
    status, body = raw(server, "GET", f"/runs/{run_id}/artifacts")
    assert status == 200 and json.loads(body)["misclassified"][0]["pred"] == 7
    # Another run's files are not reachable through this run's id, nor a missing image.
    assert raw(server, "GET", f"/runs/{server.ids[1]}/checkpoint")[0] == 404
    assert raw(server, "GET", f"/runs/{run_id}/misclassified/1.png")[0] == 404


@pytest.mark.parametrize("run_id", [999_999, 2**31 - 1])
def test_ids_that_do_not_exist_are_404(server, run_id):
    for template in RUN_PATHS:
        status, body = raw(server, "GET", template.format(run_id))
        assert status == 404, (template, status, body[:200])
        assert json.loads(body) == {"detail": f"run {run_id} not found"} or template.endswith(".png")
    for method, template in (("POST", "/runs/{}/cancel"), ("POST", "/runs/{}/retry"), ("DELETE", "/runs/{}")):
        assert raw(server, method, template.format(run_id))[0] == 404


@pytest.mark.parametrize("run_id", ["0", "-1", "1.5", "1e3", "NaN", "inf", "0x10", str(2**31), str(2**64),
                                    "%EF%BC%99", "%D9%A1"])  # fullwidth 9, Arabic-Indic 1
def test_malformed_ids_are_422(server, run_id):
    status, body = raw(server, "GET", f"/runs/{run_id}")
    assert status == 422, (run_id, status, body[:200])
    assert json.loads(body)["detail"][0]["loc"] == ["path", "run_id"]


def _post(server, body: str | bytes, **headers) -> tuple[int, bytes]:
    return raw(server, "POST", "/runs", body, {"Content-Type": "application/json", **headers})


def test_oversized_bodies_are_413_and_nothing_is_created(server):
    total = server.get("/runs").json()["total"]
    big = json.dumps({"model": "mnist-logreg", "name": "a" * 200_000})
    assert _post(server, big)[0] == 413
    # The same without a Content-Length: a chunked body is cut off at the limit too.
    with server.client() as c:
        chunks = (b'{"model": "mnist-logreg", "name": "', *([b"a" * 4096] * 64), b'"}')
        assert c.post("/runs", content=iter(chunks), headers={"Content-Type": "application/json"}).status_code == 413
    # A Content-Length announcing a huge body is refused before any of it is read.
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(b"POST /runs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000000000000\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 413")
    assert server.get("/runs").json()["total"] == total
    assert server.get("/health").status_code == 200


@pytest.mark.parametrize("depth", [100, 1_000, 20_000])
def test_deeply_nested_json_is_refused_cleanly(server, depth):
    for body in ('{"model": "mnist-logreg", "name": ' + "[" * depth + "]" * depth + "}",
                 '{"model": "mnist-logreg", "name": ' + '{"a":' * depth + "1" + "}" * depth + "}",
                 "[" * depth + "]" * depth):
        status, answer = _post(server, body)
        assert 400 <= status < 500 and status != 404, (depth, status, answer[:200])
    assert server.get("/health").status_code == 200


@pytest.mark.parametrize("field, value", [
    ("lr", "NaN"), ("lr", "Infinity"), ("lr", "-Infinity"), ("lr", "1e999"), ("lr", "-0.1"), ("lr", "0"),
    ("lr", "101"), ("momentum", "NaN"), ("momentum", "1"), ("weight_decay", "-1e-9"), ("gamma", "Infinity"),
    ("epochs", "-1"), ("epochs", "0"), ("epochs", "1001"), ("epochs", "1.5"), ("epochs", "1e3"),
    ("epochs", '"3"'), ("epochs", "true"), ("epochs", "99999999999999999999999999"),
    ("batch_size", "0"), ("batch_size", "65537"), ("batch_size", "-64"), ("seed", "-1"),
    ("seed", str(2**64)), ("train_subset", "0"), ("train_subset", "-5"), ("test_subset", "NaN"),
    ("name", '""'), ("name", '"' + "n" * 201 + '"'), ("name", "123"), ("name", "[]"),
    ("name", '"a\\u0000b"'),  # PostgreSQL text cannot hold a NUL: refused on every database
    ("model", '"no-such-model"'), ("model", '"../../etc/passwd"'), ("dataset", '"imagenet"'),
    ("optimizer", '"sgd; DROP TABLE run"'), ("unknown_key", "1"),
])
def test_bad_numbers_and_fields_are_422(server, field, value):
    body = '{"model": "mnist-logreg", ' + json.dumps(field) + ": " + value + "}" if field != "model" \
        else '{"model": ' + value + "}"
    status, answer = _post(server, body)
    assert status == 422, (field, value, status, answer[:300])
    detail = json.loads(answer)["detail"]  # valid JSON even for NaN input
    assert any(field in e["loc"] for e in detail), detail


@pytest.mark.parametrize("name", ["Ünïcødé ✓ 🚀 模型", "\u202eRTL override", "tab\tnew\nline \"quoted\", comma",
                                  "'; DROP TABLE run; --", "%_\\", "n" * 200, "😀" * 200])
def test_unicode_and_long_names_round_trip(server, name):
    created = server.post_run(model="mnist-logreg", name=name)
    assert created["name"] == name
    assert server.run(created["id"])["name"] == name
    found = server.get("/runs", params={"q": name}).json()
    assert created["id"] in [r["id"] for r in found["items"]]
    assert all(name in r["name"] or name in r["model"] for r in found["items"])  # % and _ are literal
    rows = list(csv.DictReader(io.StringIO(server.get("/runs.csv").text)))
    assert name in [r["name"] for r in rows]


def test_a_nul_in_the_search_is_422(server):
    # SQLite's LIKE would stop at a NUL and find more: refused instead.
    search = server.get("/runs", params={"q": "a\x00b"})
    assert search.status_code == 422 and search.json()["detail"][0]["loc"] == ["query", "q"]


@pytest.mark.parametrize("params", [
    {"q": "' OR 1=1 --"}, {"q": "\" OR \"\"=\""}, {"q": "%"}, {"q": "_"}, {"q": "1; DROP TABLE run"},
    {"model": "x' OR '1'='1"}, {"model": "mnist-logreg' --"},
])
def test_sql_looking_filters_match_literally(server, params):
    total = server.get("/runs").json()["total"]
    r = server.get("/runs", params=params)
    assert r.status_code == 200
    needle = params.get("q") or params.get("model")
    assert all(needle in run["name"] or needle in run["model"] for run in r.json()["items"]), r.json()
    assert r.json()["total"] < total
    assert server.get("/runs.csv", params=params).status_code == 200
    assert server.get("/runs").json()["total"] == total  # the table is intact


@pytest.mark.parametrize("params", [
    {"status": "queued' OR 1=1 --"}, {"sort": "id; DROP TABLE run"}, {"sort": "id desc"}, {"order": "random()"},
    {"dataset": "mnist' --"}, {"limit": "-1"}, {"limit": "0"}, {"limit": "1001"}, {"limit": "NaN"},
    {"offset": "-5"}, {"offset": "1e9"}, {"q": "q" * 201},
])
def test_bad_filters_are_422(server, params):
    r = server.get("/runs", params=params)
    assert r.status_code == 422, (params, r.text[:300])
    assert server.get("/runs.csv", params=params).status_code in (200, 422)
