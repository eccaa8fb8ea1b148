"""A client that closes its event stream is a normal event, not an error: the server logs no
traceback however the client leaves (mid-replay with events still queued for it, or idle),
and the other streams go on. A real server on a real socket.

    .venv/bin/python -m pytest tests/test_event_stream.py -q
"""

import socket
import time

from tests.stack import Stack, sse_events

RUNS = 300  # enough queued events that a replay is still writing when the client leaves


def _open_and_drop(port: int, path: str, read_bytes: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n".encode())
        got = b""
        while len(got) < read_bytes:
            chunk = sock.recv(4096)
            if not chunk:
                break
            got += chunk
        assert got.startswith(b"HTTP/1.1 200"), got[:200]


def test_a_client_leaving_its_stream_logs_no_traceback(tmp_path):
    with Stack(tmp_path, worker=False) as stack:
        ids = [stack.post("/runs", {"model": "mnist-logreg", "epochs": 1})["id"] for _ in range(RUNS)]
        for _ in range(5):
            _open_and_drop(stack.port, "/events?last_event_id=0", 2000)  # mid-replay
            _open_and_drop(stack.port, f"/runs/{ids[0]}/events?last_event_id=0", 200)
        _open_and_drop(stack.port, "/events", 100)  # idle: only the response head has come
        time.sleep(1.5)  # the server notices each disconnect

        # Streams still work: a new one replays every run's status event.
        with stack.client() as client, client.stream("GET", "/events", params={"last_event_id": 0}) as response:
            seen = set()
            for event in sse_events(response):
                seen.add(event["data"]["id"])
                if len(seen) == RUNS:
                    break
        assert seen == set(ids)

        log = stack.log()
        for sign in ("Traceback", "BrokenResourceError", "Exception in ASGI application", " ERROR "):
            assert sign not in log, log[-3000:]
