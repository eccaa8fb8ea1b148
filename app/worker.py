"""The worker process: claims queued runs from the database, trains them with the trainer
library, writes every epoch back and heartbeats while it works. It never serves HTTP; the
database is its only channel to the server. The one module of app/ that imports torch.

    zoolab worker [--name NAME] [--until-empty]      # or: python -m app.worker

Checkpoints: after each epoch `ckpt-<epoch>.pt` is written (app/artifacts.py) before the
epoch's metrics are committed, so a run taken over after a crash resumes from its last
committed epoch, with no epoch lost or written twice; if that checkpoint is damaged, from
the one before it (or from the start), and the run says so. A database that cannot be
written for a while (locked, full, unreachable) does not end the worker: it lets its run go
back to the queue once it can, and waits with a growing backoff meanwhile.

A sweep's trial also reports each epoch's test accuracy to the sweep's Optuna study, whose
pruner may stop it (status `pruned`); the worker tells the study how each trial ended.

Fresh seeds of one group may be claimed together (ZOOLAB_STACK_SEEDS) and trained as one
stacked network: app/seed_group.py, each still a run of its own."""

import argparse
import logging
import os
import signal
import socket
import sys
import threading
import time
import traceback

import torch
import torchvision
from PIL import Image
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from app import faults, queue, studies, sweeper
from app.artifacts import DiskFull, RunFiles
from app.db import make_engine
from app.migrate import require_current
from app.models import Run, Status
from app.settings import Settings, get_settings
from trainer.config import RunConfig
from trainer.data import Dataset, DatasetError, load
from trainer.devices import cuda_devices, default_threads, describe, pick_device, stats
from trainer.nets import model_file
from trainer.report import classification_report
from trainer.train import Diverged, Evaluation, Stopped, TrainState, train

log = logging.getLogger("zoolab.worker")
MISCLASSIFIED_KEPT = 48
POLL_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 30.0


def _out_of_memory(e: BaseException) -> bool:
    # CUDA raises torch.OutOfMemoryError; the CPU allocator a plain RuntimeError (ENOMEM).
    return isinstance(e, torch.OutOfMemoryError) or (
        isinstance(e, RuntimeError) and "DefaultCPUAllocator: can't allocate memory" in str(e))


def _save(files: RunFiles, path, obj) -> None:
    files.write(path, lambda f: torch.save(obj, f))


def _model_file(config: RunConfig, weights: dict) -> dict:
    return model_file(config.model_dump(), config.layers, weights)


class Heartbeat(threading.Thread):
    """Beats every few seconds for each of its leases (one run, or seeds trained together);
    sets `stop[run id]` when that run is cancelled or taken from us, and beats it no more."""

    def __init__(self, leases: list[queue.Lease], every: float, device: torch.device):
        super().__init__(daemon=True, name=f"heartbeat-{leases[0].run_id}")
        self.leases, self.every, self.device = leases, every, device
        self.stop = {lease.run_id: threading.Event() for lease in leases}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.every):
            device_stats = stats(self.device)
            for lease in self.leases:
                if self.stop[lease.run_id].is_set():
                    continue
                try:
                    if lease.heartbeat(**device_stats):
                        self.stop[lease.run_id].set()
                except Exception:  # a busy database must not kill the beat; the next one retries
                    log.exception("heartbeat failed")

    def close(self) -> None:
        self.done.set()
        self.join()


class Worker:
    """The worker process (its row in the database is app.models.WorkerRecord)."""

    def __init__(self, settings: Settings | None = None, name: str | None = None):
        self.settings = settings or get_settings()
        self.engine = make_engine(self.settings.database_url)
        require_current(self.engine)
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.device = pick_device(self.settings.device)
        self.shutting_down = threading.Event()
        self.dropped: str | None = None  # why a run of ours was left running by a database fault
        torch.set_num_threads(self.settings.threads or default_threads())

    def serve(self, until_empty: bool = False) -> int:
        """Claim and train runs until stopped (or until the queue is empty). Returns runs done."""
        from app.seed_group import stackable, train_together  # app.seed_group builds on this module

        queue.register_worker(self.engine, self.name, describe(self.device), **stats(self.device))
        done, backoff = 0, POLL_SECONDS
        try:
            while not self.shutting_down.is_set():
                try:
                    if self.dropped:
                        queue.release_lost(self.engine, self.settings.max_attempts, worker=self.name,
                                           reason=self.dropped)
                        self.dropped = None
                    queue.reap_stale(self.engine, self.settings.stale_seconds, self.settings.max_attempts)
                    leases = queue.claim_group(self.engine, self.name, self.settings.stack_seeds,
                                               self.settings.stale_seconds, stackable)
                    if not leases:
                        if until_empty:
                            break
                        queue.worker_idle(self.engine, self.name, **stats(self.device))
                        self.shutting_down.wait(POLL_SECONDS)
                        continue
                    if len(leases) == 1:
                        self.execute(leases[0])
                    else:
                        train_together(self, leases)
                    done += len(leases)
                    backoff = POLL_SECONDS
                except OperationalError as e:
                    backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                    log.warning("database unavailable (%s); trying again in %.0f s", _reason(e), backoff)
                    self.shutting_down.wait(backoff)
        finally:
            queue.worker_stopped(self.engine, self.name)
        return done

    def versions(self) -> dict:
        versions = {"torch": torch.__version__, "torchvision": torchvision.__version__,
                    "threads": torch.get_num_threads()}
        if self.device.type == "cuda":
            versions["cuda"] = torch.version.cuda
        return versions

    def execute(self, lease: queue.Lease) -> None:
        run_id = lease.run_id
        with Session(self.engine) as s:
            run = s.get(Run, run_id)
            config = RunConfig(**run.config)
            epochs_done, seconds_before = run.epochs_done, run.total_seconds
        trial = sweeper.trial_report(self.engine, run)  # a sweep's trial: its study hears each epoch
        log.info("run %s: %s for %s epochs (from epoch %s)", run_id, config.model, config.epochs, epochs_done + 1)
        beat = self.heartbeat([lease])
        files = RunFiles(self.settings.artifact_dir, run_id)
        files.remove_partial()  # what a killed worker was writing
        try:
            resume, epochs_done, note = self._resume_point(files, epochs_done)
            if resume is None:
                seconds_before = 0.0
            if note:
                log.warning("run %s: %s", run_id, note)
            lease.start(describe(self.device), self.versions(), epochs_done, note)
            data = load(config.dataset, self.settings.data_dir, self.device, self.settings.download)
            reporter = DatabaseReporter(lease, files, config, seconds_before, trial)
            result = train(config, data, reporter, self.device, resume=resume,
                           should_stop=self.should_stop(beat, run_id), progress_seconds=self.settings.progress_seconds)
            # Resumed after its last epoch (the worker died between that epoch's commit and its
            # model.pt): the checkpoint holds the final weights.
            weights = reporter.state.model.state_dict() if reporter.state else resume["model"]
            self.finish(lease, files, data, config, result, weights)
        except Exception as e:
            self.conclude(lease, config, e)
        finally:
            self.done_with(beat)
            if trial is not None:
                self._settle(run_id)

    def heartbeat(self, leases: list[queue.Lease]) -> Heartbeat:
        beat = Heartbeat(leases, self.settings.heartbeat_seconds, self.device)
        beat.start()
        return beat

    def done_with(self, beat: Heartbeat) -> None:
        """After a run (or seeds trained together): no more beats, and the device's cache freed."""
        beat.close()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def should_stop(self, beat: Heartbeat, run_id: int):
        return lambda: beat.stop[run_id].is_set() or self.shutting_down.is_set()

    def finish(self, lease: queue.Lease, files: RunFiles, data: Dataset, config: RunConfig, result: Evaluation,
               weights: dict) -> None:
        """A run trained to its last epoch: its artifacts and model.pt, then `finished`."""
        self._write_artifacts(files, data, config, result, weights)
        lease.end(Status.FINISHED, has_artifacts=True)
        files.prune_checkpoints(None)

    def conclude(self, lease: queue.Lease, config: RunConfig, e: Exception) -> None:
        """Record how a run ended early with `e` (a run alone, or one seed of a group trained
        together). Re-raises a database fault (OperationalError): serve() backs off."""
        run_id = lease.run_id
        match e:
            case studies.Pruned():
                lease.end(Status.PRUNED, error=str(e))
            case Stopped() if self.shutting_down.is_set():
                lease.release("worker shut down")
            case Stopped():
                lease.end(Status.CANCELLED)
            case queue.LostRun():
                log.warning("run %s is no longer ours (cancelled, deleted or taken over)", run_id)
            case OperationalError():
                # Not the run's fault, and the database would refuse to record it failed anyway:
                # the run goes back to the queue once the database takes writes again (serve()).
                self.dropped = f"database unavailable ({_reason(e)})"
                log.warning("run %s: %s", run_id, self.dropped)
                raise e
            case Diverged() | DatasetError() | DiskFull():
                lease.end(Status.FAILED, error=str(e))
            case _ if _out_of_memory(e):
                log.warning("run %s: out of memory (batch size %s)", run_id, config.batch_size)
                lease.end(Status.FAILED, error=f"out of memory on {self.device} with batch size "
                                               f"{config.batch_size}: lower batch_size ({str(e).splitlines()[0]})")
            case _:
                log.error("run %s failed", run_id, exc_info=e)
                lease.end(Status.FAILED, error=f"{type(e).__name__}: {e}",
                          traceback="".join(traceback.format_exception(e)))

    def _settle(self, run_id: int) -> None:
        """Tell the sweep's study how the trial ended, so the next trials' pruning counts it; a
        failure here is the server's sweeper's to catch up with, never this worker's end."""
        try:
            sweeper.settle(self.engine, run_id)
        except Exception:
            log.exception("run %s: telling its sweep's study failed; the server will", run_id)

    def _resume_point(self, files: RunFiles, epochs_done: int) -> tuple[dict | None, int, str | None]:
        """The checkpoint to resume from, its epoch, and what was done instead if it was not the
        last finished epoch's: a damaged (or missing) last checkpoint falls back to the one
        before it, and without either the run starts over."""
        problems = []
        for epoch in range(epochs_done, max(epochs_done - 2, 0), -1):
            path = files.checkpoint(epoch)
            try:
                state = torch.load(path, map_location=self.device, weights_only=False)
            except FileNotFoundError:
                problems.append(f"{path.name} is missing")
                continue
            except Exception as e:  # truncated or corrupt: torch raises whatever its reader hit
                problems.append(f"{path.name} is unreadable ({_reason(e).split('. ')[0]})")
                continue
            return state, epoch, (f"{'; '.join(problems)}: resumed after epoch {epoch} from {path.name}"
                                  if problems else None)
        return None, 0, f"{'; '.join(problems)}: started over from epoch 1" if problems else None

    def _write_artifacts(self, files: RunFiles, data: Dataset, config: RunConfig, result: Evaluation,
                         weights: dict) -> None:
        test_y = data.test_y[:config.test_subset]
        report = classification_report(result.predictions, test_y, data.classes, keep=MISCLASSIFIED_KEPT)
        wrong = [m["index"] for m in report["misclassified"]]
        images = data.test_x[wrong].cpu()
        for k in range(len(wrong)):
            array = images[k].permute(1, 2, 0).squeeze(-1).numpy()
            files.write(files.misclassified(k), lambda f, a=array: Image.fromarray(a).save(f, format="PNG"))
        files.write_json(files.artifacts, report)
        _save(files, files.model, _model_file(config, weights))


class DatabaseReporter:
    """The trainer's reporter: checkpoint, then commit, each epoch; progress points between. A
    sweep's trial then reports the epoch to its study, whose pruner may stop it there."""

    def __init__(self, lease: queue.Lease, files: RunFiles, config: RunConfig, seconds_before: float,
                 trial: studies.TrialReport | None = None):
        self.lease, self.files, self.config, self.trial = lease, files, config, trial
        self.started = time.perf_counter() - seconds_before
        self.state: TrainState | None = None

    def _wall(self) -> float:
        return time.perf_counter() - self.started

    def epoch(self, epoch: int, metrics: dict, state: TrainState) -> None:
        self.state = state
        _save(self.files, self.files.checkpoint(epoch), state.state_dict())
        self.lease.record_epoch(epoch, metrics, self._wall(), has_checkpoint=True)
        faults.reached("epoch-committed", self.lease.run_id, epoch)
        _save(self.files, self.files.model, _model_file(self.config, state.model.state_dict()))
        self.files.prune_checkpoints(epoch)
        if self.trial is not None:
            self.trial.epoch(epoch, metrics.get("test_acc"))  # may raise studies.Pruned

    def progress(self, epoch: float, fraction: float, train_loss: float, train_acc: float,
                 eta_seconds: float | None) -> None:
        self.lease.record_progress(epoch, fraction, train_loss, train_acc, self._wall(), eta_seconds)


def _reason(e: BaseException) -> str:
    """The first line of an error, without SQLAlchemy's statement and parameters."""
    return str(getattr(e, "orig", None) or e).splitlines()[0] if str(e) else type(e).__name__


def run_gpus(spec: str) -> int:
    """`zoolab worker --gpus`: one supervised worker process per GPU, until SIGTERM/SIGINT."""
    from app.supervisor import Slot, Supervisor, split_threads

    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(levelname)s %(message)s")
    try:
        ids = cuda_devices(spec)
    except ValueError as e:
        print(f"zoolab worker --gpus: {e}", file=sys.stderr)
        return 1
    settings = get_settings()
    engine = make_engine(settings.database_url)
    require_current(engine)
    threads = str(split_threads(settings, len(ids)))
    slots = [Slot(f"gpu{i}", {"CUDA_VISIBLE_DEVICES": str(i), "ZOOLAB_DEVICE": "cuda", "ZOOLAB_THREADS": threads})
             for i in ids]
    supervisor = Supervisor(settings, lambda: engine, slots)
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    supervisor.start()
    log.info("supervising %d GPU workers (%s) on %s", len(ids), ", ".join(f"cuda:{i}" for i in ids),
             engine.url.render_as_string(hide_password=True))
    stopping.wait()
    supervisor.stop()
    return 0


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(levelname)s %(message)s")
    worker = Worker(name=args.name)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: worker.shutting_down.set())
    log.info("worker %s on %s, database %s", worker.name, worker.device, worker.settings.database_url)
    worker.serve(until_empty=args.until_empty)
    return 0


if __name__ == "__main__":
    from app.cli import main
    raise SystemExit(main(["worker", *sys.argv[1:]]))
