"""The server keeps an idle connection open longer than its clients keep theirs: otherwise a
client that reuses a connection just as the server closes it gets a ReadError (issue 16: a
load test failed once in ~4,600 requests). Checked on the wire, with a raw socket."""

import socket
import time

from tests.stack import Stack

CLIENT_IDLE_SECONDS = 6  # longer than httpx's keepalive_expiry (5 s) and uvicorn's default (5 s)


def _request(sock: socket.socket) -> bytes:
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length"))
    while len(body) < length:
        body += sock.recv(4096)
    return head


def test_idle_connection_outlives_the_clients_idle_timeout(tmp_path):
    with Stack(tmp_path, worker=False) as stack:
        with socket.create_connection(("127.0.0.1", stack.port), timeout=10) as sock:
            assert _request(sock).startswith(b"HTTP/1.1 200")
            time.sleep(CLIENT_IDLE_SECONDS)
            second = _request(sock)
            assert second.startswith(b"HTTP/1.1 200"), f"the server closed the idle connection: {second!r}"
