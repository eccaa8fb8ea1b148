"""Fault injection for the tests and bench/chaos.py: a worker started with

    ZOOLAB_KILL_AT=<point>:<run id>:<epoch>

SIGKILLs itself when it reaches <point> for that run and epoch, so a test can kill it at a
moment no timing could hit reliably. Points (app/worker.py):

    epoch-committed   epoch <epoch>'s metrics are committed, its model.pt not yet written

Each point is reached once per run and epoch, so a restarted worker with the same
environment goes on. Unset (always, outside tests), `reached` does nothing."""

import logging
import os
import signal

ENV = "ZOOLAB_KILL_AT"
log = logging.getLogger("zoolab.faults")


def reached(point: str, run_id: int, epoch: int) -> None:
    if os.environ.get(ENV) == f"{point}:{run_id}:{epoch}":
        log.warning("fault injection: %s of run %s epoch %s reached; SIGKILL", point, run_id, epoch)
        os.kill(os.getpid(), signal.SIGKILL)
