"""Keeps N local worker processes alive: beside the server (`zoolab serve --workers N`), or one
per GPU of a machine (`zoolab worker --gpus all`).

If a worker dies, its run is released at once (requeued to resume from its last epoch; see
app.queue.release_lost) and a new worker takes its place, with a backoff when it keeps dying.
No error of one round ends the supervisor: when the database cannot be written (locked, full,
a disk I/O error) the release fails, is logged and tried again after a backoff — the dead
worker's slot is refilled only once its run is released."""

import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from app import queue
from app.settings import Settings

log = logging.getLogger("zoolab.supervisor")
POLL_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 30.0


@dataclass
class Slot:
    """One worker the supervisor keeps alive: its name, its environment, its process."""
    label: str                       # "local-0", "gpu1": part of every name it gets
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen | None = None
    name: str = ""
    restarts: int = 0
    started: float = 0.0
    backoff: float = 1.0
    restart_at: float = 0.0


def split_threads(settings: Settings, workers: int) -> int:
    """CPU threads per worker: ZOOLAB_THREADS if set, else the machine's cores less one for the
    server, shared out (one each at least)."""
    if settings.threads:
        return settings.threads
    return max(1, ((os.cpu_count() or 1) - 1) // workers)


class Supervisor(threading.Thread):
    def __init__(self, settings: Settings, engine: Callable[[], Engine], slots: list[Slot]):
        super().__init__(daemon=True, name="worker-supervisor")
        self.settings, self.engine, self.slots = settings, engine, slots
        self.stopping = threading.Event()
        self.prefix = f"{socket.gethostname()}-{os.getpid()}"

    @classmethod
    def local(cls, settings: Settings, engine: Callable[[], Engine], workers: int = 1) -> "Supervisor":
        threads = str(split_threads(settings, workers))
        return cls(settings, engine, [Slot(f"local-{i}", {"ZOOLAB_THREADS": threads}) for i in range(workers)])

    def _spawn(self, slot: Slot) -> None:
        slot.name = f"{self.prefix}-{slot.label}-{slot.restarts}"
        slot.process = subprocess.Popen([sys.executable, "-m", "app.worker", "--name", slot.name],
                                        env={**os.environ, **slot.env})
        slot.started = time.monotonic()
        log.info("started worker %s (pid %s)", slot.name, slot.process.pid)

    def _reap(self, slot: Slot) -> None:
        """A worker that died: release its run, mark it stopped, schedule its successor."""
        code = slot.process.returncode
        moved = queue.release_lost(self.engine(), self.settings.max_attempts, worker=slot.name,
                                   reason=f"worker process died (exit code {code})")
        queue.worker_stopped(self.engine(), slot.name)
        slot.backoff = 1.0 if time.monotonic() - slot.started > 60 else min(slot.backoff * 2, MAX_BACKOFF_SECONDS)
        slot.restart_at = time.monotonic() + slot.backoff
        slot.process = None
        slot.restarts += 1
        log.warning("worker %s died with exit code %s; released runs %s; restarting in %.0f s",
                    slot.name, code, moved, slot.backoff)

    def _round(self) -> None:
        for slot in self.slots:
            if slot.process is None:
                if time.monotonic() >= slot.restart_at:
                    self._spawn(slot)
            elif slot.process.poll() is not None:
                self._reap(slot)

    def run(self) -> None:
        failures = 0
        while not self.stopping.is_set():
            try:
                self._round()
                failures = 0
            except Exception:  # the database, most likely: whatever it was, try again later
                failures += 1
                wait = min(POLL_SECONDS * 2 ** failures, MAX_BACKOFF_SECONDS)
                log.exception("supervising the worker failed; trying again in %.0f s (%s in a row)", wait, failures)
            self.stopping.wait(min(POLL_SECONDS * 2 ** failures, MAX_BACKOFF_SECONDS))

    def alive(self) -> int:
        return sum(1 for s in self.slots if s.process is not None and s.process.poll() is None)

    def stop(self, timeout: float = 20.0) -> None:
        self.stopping.set()
        running = [s for s in self.slots if s.process is not None and s.process.poll() is None]
        for slot in running:
            slot.process.terminate()  # each worker requeues its run and exits
        deadline = time.monotonic() + timeout
        for slot in running:
            try:
                slot.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                slot.process.kill()
                slot.process.wait()
        for slot in self.slots:
            if not slot.name:
                continue
            # The worker requeues its own run on SIGTERM; this catches one that died first
            # (killed, or terminated before it installed its signal handler).
            try:
                queue.release_lost(self.engine(), self.settings.max_attempts + 1, worker=slot.name,
                                   reason="worker stopped at shutdown")
            except Exception:
                log.exception("could not release the runs of %s at shutdown", slot.name)
        self.join(timeout=5)
