"""Keeps one local worker process alive beside the server (`zoolab serve`).

If the worker dies, its run is released at once (requeued to resume from its last
epoch; see app.queue.release_lost) and a new worker is started, with a short backoff
when it keeps dying."""

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


class Supervisor(threading.Thread):
    def __init__(self, settings: Settings):
        super().__init__(daemon=True, name="worker-supervisor")
        self.settings = settings
        self.stopping = threading.Event()
        self.process: subprocess.Popen | None = None
        self.worker_name = ""
        self.restarts = 0

    def _spawn(self) -> None:
        self.worker_name = f"{socket.gethostname()}-local-{os.getpid()}-{self.restarts}"
        self.process = subprocess.Popen([sys.executable, "-m", "app.worker", "--name", self.worker_name])
        log.info("started worker %s (pid %s)", self.worker_name, self.process.pid)

    def run(self) -> None:
        backoff = 1.0
        while not self.stopping.is_set():
            self._spawn()
            started = time.monotonic()
            while self.process.poll() is None and not self.stopping.wait(0.5):
                pass
            if self.stopping.is_set():
                break
            code = self.process.returncode
            moved = queue.release_lost(get_engine(), self.settings.max_attempts, worker=self.worker_name,
                                       reason=f"worker process died (exit code {code})")
            queue.worker_stopped(get_engine(), self.worker_name)
            log.warning("worker %s died with exit code %s; released runs %s; restarting",
                        self.worker_name, code, moved)
            self.restarts += 1
            backoff = 1.0 if time.monotonic() - started > 60 else min(backoff * 2, 30.0)
            self.stopping.wait(backoff)

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
