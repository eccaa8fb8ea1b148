"""Who can reach the server and change things: real `zoolab serve` processes (no worker).

    ZOOLAB_DATA_DIR=/work/shared/data ZOOLAB_DOWNLOAD=false .venv/bin/python -m pytest tests/test_security.py -q

- with no host configured it listens on 127.0.0.1 only;
- without a token (the default) the API is open; with `--token` (or ZOOLAB_TOKEN) every
  POST and DELETE of the schema needs `Authorization: Bearer <token>` (401 without or with
  a wrong one, and nothing changes), while every read stays open;
- no CORS headers at all unless ZOOLAB_CORS_ORIGINS is set, and then only for those origins;
- a browser's state-changing request from another site (its Origin, or Sec-Fetch-Site) is
  refused with or without a token, unless its origin is one of ZOOLAB_CORS_ORIGINS.
"""

import base64
import socket
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.stack import QUICK_RUN, Stack

TOKEN = "tok-3f9a1c7e5b"
DASHBOARD = "https://dash.example"
EVIL = "https://evil.example"


@pytest.fixture(scope="module")
def open_server(tmp_path_factory):
    """`zoolab serve` as installed: no host, no token, no CORS configured."""
    with Stack(tmp_path_factory.mktemp("open"), worker=False) as stack:
        assert not any(k in stack.env for k in ("ZOOLAB_HOST", "ZOOLAB_TOKEN", "ZOOLAB_CORS_ORIGINS"))
        yield stack


@pytest.fixture(scope="module")
def token_server(tmp_path_factory):
    """`zoolab serve --token ...` with CORS configured for one dashboard origin."""
    with Stack(tmp_path_factory.mktemp("token"), worker=False, token=TOKEN,
               env={"ZOOLAB_CORS_ORIGINS": f"{DASHBOARD}, http://localhost:5173"}) as stack:
        yield stack


# --- binding ----------------------------------------------------------------------------

def _listening(pid: int) -> set[tuple[str, int]]:
    """(address, port) of every listening TCP socket of process `pid`, from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink().as_posix()
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A" or fields[9] not in inodes:  # 0A = LISTEN
                continue
            hex_addr, hex_port = fields[1].split(":")
            raw = bytes.fromhex(hex_addr)
            if family == socket.AF_INET:
                address = socket.inet_ntop(family, raw[::-1])
            else:  # four little-endian 32-bit words
                address = socket.inet_ntop(family, b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))
            found.add((address, int(hex_port, 16)))
    return found


def _outward_address() -> str | None:
    """This machine's address on its default route, if it has one (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_binds_loopback_only_by_default(open_server):
    assert _listening(open_server.pid) == {("127.0.0.1", open_server.port)}
    assert "--host" not in open_server.command()
    address = _outward_address()
    if address:  # not reachable on the machine's other interface
        with pytest.raises(OSError):
            socket.create_connection((address, open_server.port), timeout=5).close()


# --- the token ----------------------------------------------------------------------------

def _operations(stack: Stack) -> list[tuple[str, str]]:
    """(method, path) of every operation, with its required query parameters as {name} in a query string."""
    spec = stack.get("/openapi.json").json()
    operations = []
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            required = [p["name"] for p in operation.get("parameters", []) if p["in"] == "query" and p["required"]]
            operations.append((method.upper(), path + ("?" + "&".join(f"{n}={{{n}}}" for n in required)
                                                      if required else "")))
    return operations


def _fill(path: str, run_id: int, group_key: str = "0" * 16) -> str:
    for name, value in {"run_id": run_id, "k": 0, "key": group_key, "a": group_key, "b": group_key,
                        "preset_id": "my-preset", "sweep_id": 1, "model": "mnist-logreg"}.items():
        path = path.replace("{" + name + "}", str(value))
    return path


WRONG = [None, "Bearer wrong", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", f"Bearer {TOKEN.upper()}",
         "Bearer", f"Bearer  {TOKEN} x", TOKEN, f"Token {TOKEN}",
         "Basic " + base64.b64encode(f"user:{TOKEN}".encode()).decode()]


def test_every_change_needs_the_token(token_server):
    with token_server.client() as authorized:
        run_id = authorized.post("/runs", json=QUICK_RUN).json()["id"]
    changes = [(m, p) for m, p in _operations(token_server) if m in ("POST", "DELETE", "PUT", "PATCH")]
    assert {("POST", "/runs"), ("POST", "/runs/{run_id}/cancel"), ("POST", "/runs/{run_id}/retry"),
            ("DELETE", "/runs/{run_id}")} <= set(changes)
    before = token_server.get("/runs").json()
    with httpx.Client(base_url=token_server.url, timeout=30) as anonymous:
        for method, path in changes:
            for header in WRONG:
                headers = {"Authorization": header} if header is not None else {}
                r = anonymous.request(method, _fill(path, run_id), json=QUICK_RUN, headers=headers,
                                      params={"token": TOKEN})  # a token in the query does not count
                assert r.status_code == 401, (method, path, header, r.status_code, r.text)
                assert r.headers["www-authenticate"] == "Bearer"
                assert TOKEN not in r.text
        # Refused before the body is even validated: no schema errors for strangers.
        assert anonymous.post("/runs", content=b"not json").status_code == 401
        assert anonymous.post("/runs", json={"model": "nope", "bad": 1}).status_code == 401
    after = token_server.get("/runs").json()
    assert after["total"] == before["total"] and after["items"] == before["items"]  # nothing changed


def test_changes_succeed_with_the_token(token_server):
    with token_server.client() as c:  # sends Authorization: Bearer TOKEN
        run = c.post("/runs", json=QUICK_RUN)
        assert run.status_code == 201
        run_id = run.json()["id"]
        assert c.post(f"/runs/{run_id}/cancel").status_code == 200
        assert c.post(f"/runs/{run_id}/retry").status_code == 200
        assert c.post(f"/runs/{run_id}/cancel").status_code == 200
        assert c.delete(f"/runs/{run_id}").status_code == 204
        assert c.get(f"/runs/{run_id}").status_code == 404


def test_reads_stay_open_with_a_token(token_server):
    with token_server.client() as c:
        run = c.post("/runs", json=QUICK_RUN).json()
        sweep = c.post("/sweeps", json={"base": QUICK_RUN, "space": {"lr": {"choices": [0.01]}}, "sampler": "grid"})
        assert sweep.status_code == 201 and sweep.json()["id"] == 1, sweep.text
    run_id = run["id"]
    reads = [p for m, p in _operations(token_server) if m == "GET"]
    with httpx.Client(base_url=token_server.url, timeout=30) as anonymous:
        for path in reads:
            url = _fill(path, run_id, run["group_key"])
            if path.endswith("events"):
                with anonymous.stream("GET", url) as r:
                    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
                continue
            r = anonymous.get(url)
            assert r.status_code in (200, 404), (path, r.status_code)  # 404: no artifacts yet
            assert r.status_code != 404 or "has no" in r.json()["detail"], (path, r.text)
        for path in ("/", "/static/vendor/plotly.min.js", "/openapi.json", "/docs"):
            assert anonymous.get(path).status_code == 200, path


def test_without_a_token_changes_are_open(open_server):
    with httpx.Client(base_url=open_server.url, timeout=30) as anonymous:
        run = anonymous.post("/runs", json=QUICK_RUN)
        assert run.status_code == 201
        run_id = run.json()["id"]
        assert anonymous.post(f"/runs/{run_id}/cancel").status_code == 200
        assert anonymous.post(f"/runs/{run_id}/retry").status_code == 200
        assert anonymous.post(f"/runs/{run_id}/cancel").status_code == 200
        assert anonymous.delete(f"/runs/{run_id}").status_code == 204
        # A stray Authorization header changes nothing either.
        assert anonymous.post("/runs", json=QUICK_RUN, headers={"Authorization": "Bearer x"}).status_code == 201


def test_token_from_the_environment(zoolab_env, monkeypatch):
    """ZOOLAB_TOKEN (rather than --token) protects the application the same way."""
    monkeypatch.setenv("ZOOLAB_TOKEN", TOKEN)
    from app.main import create_app
    from app.settings import get_settings
    get_settings.cache_clear()
    with TestClient(create_app()) as c:
        assert c.post("/runs", json=QUICK_RUN).status_code == 401
        assert c.post("/runs", json=QUICK_RUN, headers={"Authorization": "Bearer nope"}).status_code == 401
        r = c.post("/runs", json=QUICK_RUN, headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 201
        assert c.delete(f"/runs/{r.json()['id']}").status_code == 401
        assert c.get("/runs").json()["total"] == 1
    get_settings.cache_clear()


# --- CORS -------------------------------------------------------------------------------

def _preflight(stack: Stack, origin: str) -> httpx.Response:
    return httpx.options(stack.url + "/runs", headers={
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type"}, timeout=30)


def _cors_headers(r: httpx.Response) -> dict:
    return {k: v for k, v in r.headers.items() if k.lower().startswith("access-control-")}


def test_no_cors_headers_unless_configured(open_server):
    for origin in (DASHBOARD, EVIL, "null"):
        assert _cors_headers(open_server.get("/runs", headers={"Origin": origin})) == {}
        r = _preflight(open_server, origin)
        assert _cors_headers(r) == {} and r.status_code >= 400
        r = httpx.post(open_server.url + "/runs", json=QUICK_RUN, headers={"Origin": origin}, timeout=30)
        assert _cors_headers(r) == {}


def test_cors_only_for_configured_origins(token_server):
    for origin in (DASHBOARD, "http://localhost:5173"):
        r = _preflight(token_server, origin)
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == origin
        assert "POST" in r.headers["access-control-allow-methods"]
        assert "authorization" in r.headers["access-control-allow-headers"].lower()
        assert "access-control-allow-credentials" not in r.headers
        assert token_server.get("/runs", headers={"Origin": origin}).headers["access-control-allow-origin"] == origin
    for origin in (EVIL, "null", DASHBOARD + ".evil.example", "http://dash.example"):
        r = _preflight(token_server, origin)
        assert r.status_code >= 400 and "access-control-allow-origin" not in r.headers, origin
        assert "access-control-allow-origin" not in token_server.get("/runs", headers={"Origin": origin}).headers


# --- cross-site requests ----------------------------------------------------------------

FORM = {"Content-Type": "application/x-www-form-urlencoded"}  # what a plain HTML form posts, no preflight


def _changes(client: httpx.Client, run_id: int, headers: dict) -> list[httpx.Response]:
    return [client.post(f"/runs/{run_id}/cancel", headers={**FORM, **headers}, content=b"x=1"),
            client.post(f"/runs/{run_id}/retry", headers={**FORM, **headers}),
            client.delete(f"/runs/{run_id}", headers=headers),
            client.post("/runs", headers={**FORM, **headers}, content=b'{"model": "mnist-logreg"}')]


def test_cross_site_changes_are_refused_without_a_token(open_server):
    """With no token, a page on any other site could cancel, retry or delete runs through its
    visitor's browser: refused by the origin the browser names."""
    own = open_server.url
    with httpx.Client(base_url=own, timeout=30) as browser:
        run_id = browser.post("/runs", json=QUICK_RUN).json()["id"]
        before = browser.get("/runs").json()
        for headers in ({"Origin": EVIL}, {"Origin": "null"}, {"Origin": f"http://127.0.0.1:{open_server.port + 1}"},
                        {"Origin": EVIL, "Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "cross-site"},
                        {"Sec-Fetch-Site": "same-site"}):
            for r in _changes(browser, run_id, headers):
                assert r.status_code == 403, (headers, r.request.method, r.request.url, r.status_code, r.text)
                assert r.json()["detail"].startswith("cross-site request refused"), r.text
        assert browser.get("/runs").json() == before  # nothing changed
        # The dashboard itself (same origin) and clients that are not browsers (no Origin) go on.
        same = {"Origin": own, "Sec-Fetch-Site": "same-origin"}
        assert browser.post(f"/runs/{run_id}/cancel", headers=same).status_code == 200
        assert browser.post(f"/runs/{run_id}/retry").status_code == 200
        assert browser.post("/runs", json=QUICK_RUN, headers=same).status_code == 201
        assert browser.post(f"/runs/{run_id}/cancel", headers={"Sec-Fetch-Site": "none"}).status_code == 200
        assert browser.delete(f"/runs/{run_id}", headers={"Origin": own}).status_code == 204


def test_cross_site_changes_need_an_allowed_origin_even_with_the_token(token_server):
    with token_server.client() as c:  # with the token
        for origin in (EVIL, DASHBOARD + ".evil.example"):
            r = c.post("/runs", json=QUICK_RUN, headers={"Origin": origin})
            assert r.status_code == 403 and "cross-site" in r.json()["detail"], (origin, r.text)
        r = c.post("/runs", json=QUICK_RUN, headers={"Origin": DASHBOARD, "Sec-Fetch-Site": "cross-site"})
        assert r.status_code == 201, r.text  # ZOOLAB_CORS_ORIGINS allows the dashboard's origin
        assert c.delete(f"/runs/{r.json()['id']}", headers={"Origin": "http://localhost:5173"}).status_code == 204
