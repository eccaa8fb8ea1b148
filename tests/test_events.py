"""Live event streams (Server-Sent Events) against a real `zoolab serve` (no worker): what a
client reconnecting with a Last-Event-ID gets, and that a run's id and events are its own.

    ZOOLAB_DATA_DIR=/work/shared/data ZOOLAB_DOWNLOAD=false .venv/bin/python -m pytest tests/test_events.py -q
"""

import queue
import threading

import httpx
import pytest

from tests.stack import QUICK_RUN, Stack, sse_events

WAIT_SECONDS = 15


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with Stack(tmp_path_factory.mktemp("events"), worker=False) as stack:
        yield stack


class Listener:
    """An event stream read by a thread into a queue, so a test can wait for events with a timeout."""

    def __init__(self, stack: Stack, path: str, headers: dict):
        self.events: queue.Queue = queue.Queue()
        self.client = httpx.Client(base_url=stack.url, timeout=httpx.Timeout(10, read=None))
        self.response = self.client.send(self.client.build_request("GET", path, headers=headers), stream=True)
        assert self.response.status_code == 200, self.response.read()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for event in sse_events(self.response):
                self.events.put(event)
        except httpx.HTTPError:
            pass

    def next(self, timeout: float = WAIT_SECONDS) -> dict:
        return self.events.get(timeout=timeout)

    def close(self) -> None:
        self.response.close()
        self.client.close()


@pytest.mark.parametrize("path", ["/events", "/runs/{id}/events"])
@pytest.mark.parametrize("ahead", [1000, 2**30])
def test_a_cursor_past_the_newest_event_still_gets_what_happens_next(server, path, ahead):
    """A client whose database was reset (or that made its id up) reconnects with a cursor
    above every event: it still gets the events that come after it connected."""
    run_id = server.post_run(**QUICK_RUN)["id"]
    newest = server.get("/runs").json()["last_event_id"]
    listener = Listener(server, path.format(id=run_id), {"Last-Event-ID": str(newest + ahead)})
    try:
        # The stream subscribes only once it starts: poke the run until an event comes through.
        for _ in range(WAIT_SECONDS * 2):
            for action in ("cancel", "retry"):
                server.post(f"/runs/{run_id}/{action}")
            try:
                event = listener.next(timeout=0.5)
                break
            except queue.Empty:
                continue
        else:
            raise AssertionError(f"{path} with Last-Event-ID {newest + ahead} delivered nothing in "
                                 f"{WAIT_SECONDS} s while the run changed")
        assert event["event"] == "status" and event["data"]["id"] == run_id, event
        assert newest < event["id"] <= server.get("/runs").json()["last_event_id"]
    finally:
        listener.close()


def test_a_deleted_runs_id_and_events_never_come_back(server):
    older = server.post_run(**QUICK_RUN, name="older")["id"]
    newest = server.post_run(**QUICK_RUN, name="to delete")["id"]
    server.post(f"/runs/{newest}/cancel")
    assert server.api.delete(f"/runs/{newest}").status_code == 204
    new = server.post_run(**QUICK_RUN, name="new")
    assert new["id"] > newest > older  # the deleted run's id is not handed out again
    listener = Listener(server, f"/runs/{new['id']}/events", {"Last-Event-ID": "0"})
    try:
        first = listener.next()
        server.post(f"/runs/{new['id']}/cancel")
        second = listener.next()
    finally:
        listener.close()
    # The new run's whole history, and nothing of the deleted run's.
    assert [(e["event"], e["data"]["status"]) for e in (first, second)] == [("status", "queued"),
                                                                          ("status", "cancelled")]
    assert {e["data"]["name"] for e in (first, second)} == {"new"}
    assert server.query("SELECT kind FROM event WHERE run_id = ? ORDER BY id", new["id"]) == [("status",), ("status",)]
