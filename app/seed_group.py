"""Seeds of one group trained together by one worker: the runs that `queue.claim_group` hands
out at once (fresh runs of one group, configs equal but the seed) train as one stacked network
(trainer.stacked), which costs much less than training them one after another
(bench/README.md, section 6).

To everything else they stay runs of their own. Each keeps its lease: its start, epochs,
progress and end are its own rows, events and status; one heartbeat thread beats them all.
Each writes its own checkpoints (a solo run's format), model.pt and artifacts (RunFiles).
A seed that is cancelled, lost, diverges or whose writes fail leaves the group and ends alone
at once, through the worker's one `conclude`; the others go on. A worker that shuts down
releases them all to the queue; a killed worker's runs are reaped (app/queue.py) and each
resumes alone from its own last checkpoint (a resumed run is never claimed with others).
Runs that cannot train together (trainer.stacked.group_problem) train alone: the first now,
the others back to the queue. Each run's `versions.stacked_with` lists the runs it trained
with (GET /runs/{id}).

The worker (app/worker.py) calls `train_together(worker, leases)`; ZOOLAB_STACK_SEEDS caps
how many seeds one worker takes (1: each alone)."""

import logging
from dataclasses import dataclass

from sqlmodel import Session

from app import queue
from app.artifacts import RunFiles
from app.models import Run
from app.worker import DatabaseReporter, Worker
from trainer.config import RunConfig
from trainer.data import load
from trainer.devices import describe
from trainer.stacked import group_problem, train_seeds
from trainer.train import Evaluation

log = logging.getLogger("zoolab.worker")


def stackable(config: dict) -> bool:
    """Whether a run of this config could train stacked with its seeds (asked by the claim)."""
    try:
        return group_problem([RunConfig(**config)]) is None
    except ValueError:  # not a valid config: the run trains alone, which says what is wrong
        return False


@dataclass
class _Seed:
    lease: queue.Lease
    config: RunConfig
    files: RunFiles
    reporter: DatabaseReporter | None = None
    ended: bool = False


def train_together(worker: Worker, leases: list[queue.Lease]) -> None:
    with Session(worker.engine) as s:
        configs = [RunConfig(**s.get(Run, lease.run_id).config) for lease in leases]
    ids = [lease.run_id for lease in leases]
    problem = group_problem(configs)
    if problem:
        log.warning("runs %s cannot train together (%s): each alone", ids, problem)
        for lease in leases[1:]:
            lease.release(f"cannot train with its seeds ({problem})")
        worker.execute(leases[0])
        return
    log.info("runs %s: %s for %s epochs, %d seeds together", ids, configs[0].model, configs[0].epochs, len(ids))
    seeds = [_Seed(lease, config, RunFiles(worker.settings.artifact_dir, lease.run_id))
             for lease, config in zip(leases, configs)]
    data = None

    def end(seed: _Seed, outcome: Evaluation | Exception) -> None:
        if seed.ended:
            return
        seed.ended = True
        if isinstance(outcome, Evaluation):
            try:
                worker.finish(seed.lease, seed.files, data, seed.config, outcome,
                              seed.reporter.state.model.state_dict())
                return
            except Exception as e:
                outcome = e
        worker.conclude(seed.lease, seed.config, outcome)

    beat = worker.heartbeat(leases)
    try:
        for seed in seeds:
            seed.files.remove_partial()  # what a killed worker was writing
            versions = {**worker.versions(), "stacked_with": [i for i in ids if i != seed.lease.run_id]}
            try:
                seed.lease.start(describe(worker.device), versions, 0)
            except Exception as e:  # cancelled or deleted since the claim (LostRun): the others go on
                end(seed, e)
            seed.reporter = DatabaseReporter(seed.lease, seed.files, seed.config, 0.0)
        group = [seed for seed in seeds if not seed.ended]
        try:
            data = load(configs[0].dataset, worker.settings.data_dir, worker.device, worker.settings.download)
            outcomes = train_seeds([seed.config for seed in group], data, [seed.reporter for seed in group],
                                   worker.device,
                                   should_stop=[worker.should_stop(beat, seed.lease.run_id) for seed in group],
                                   progress_seconds=worker.settings.progress_seconds,
                                   on_leave=lambda index, why: end(group[index], why))
        except Exception as e:  # the whole group's (its data, memory, a fault): every seed ends with it
            outcomes = [e] * len(group)
        for seed, outcome in zip(group, outcomes):
            end(seed, outcome)
    finally:
        worker.done_with(beat)
