"""Keeps one local worker process alive beside the server (`zoolab serve`).

If the worker dies, its run is released at once (requeued to resume from its last
epoch; see app.queue.release_lost) and a new worker is started, with a short backoff
when it keeps dying. No error ends the supervisor: when the database cannot be written
(locked, full, a disk I/O error) the release fails, is logged and tried again after a
backoff, and the worker is restarted once it can be."""

import logging
import os
import socket
import subprocess
import sys
import threading
import time

from app import queue
from app.db import get_engine
from app.settings import Settings

log = logging.getLogger("zoolab.supervisor")
MAX_BACKOFF_SECONDS = 30.0


class Supervisor(threading.Thread):
    def __init__(self, settings: Settings):
        super().__init__(daemon=True, name="worker-supervisor")
        self.settings = settings
        self.stopping = threading.Event()
        self.process: subprocess.Popen | None = None
        self.worker_name = ""
        self.restarts = 0
        self.dead: list[tuple[str, int]] = []  # (worker name, exit code) whose runs are still to release

    def _spawn(self) -> None:
        self.worker_name = f"{socket.gethostname()}-local-{os.getpid()}-{self.restarts}"
        self.process = subprocess.Popen([sys.executable, "-m", "app.worker", "--name", self.worker_name])
        log.info("started worker %s (pid %s)", self.worker_name, self.process.pid)

    def run(self) -> None:
        backoff = 1.0
        while not self.stopping.is_set():
            try:
                self._release_dead()
                self._spawn()
                started = time.monotonic()
                while self.process.poll() is None and not self.stopping.wait(0.5):
                    pass
                if self.stopping.is_set():
                    break
                self.dead.append((self.worker_name, self.process.returncode))
                self.restarts += 1
                backoff = 1.0 if time.monotonic() - started > 60 else min(backoff * 2, MAX_BACKOFF_SECONDS)
                self._release_dead()
            except Exception:
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                log.exception("supervising the worker failed; trying again in %.0f s", backoff)
            self.stopping.wait(backoff)

    def _release_dead(self) -> None:
        """Requeue the runs of workers that died; one that cannot be released yet stays listed."""
        while self.dead:
            name, code = self.dead[0]
            moved = queue.release_lost(get_engine(), self.settings.max_attempts, worker=name,
                                       reason=f"worker process died (exit code {code})")
            queue.worker_stopped(get_engine(), name)
            log.warning("worker %s died with exit code %s; released runs %s; restarting", name, code, moved)
            self.dead.pop(0)

    def stop(self, timeout: float = 20.0) -> None:
        self.stopping.set()
        if self.process and self.process.poll() is None:
            self.process.terminate()  # the worker requeues its run and exits
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            # The worker requeues its own run on SIGTERM; this catches a worker that died
            # first (killed, or terminated before it installed its signal handler).
            queue.release_lost(get_engine(), self.settings.max_attempts + 1, worker=self.worker_name,
                               reason="worker stopped at shutdown")
        self.join(timeout=5)
