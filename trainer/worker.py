"""The worker process: claims queued runs from the database, trains them, writes every
epoch back, heartbeats while it works. It never serves HTTP; the database is its only
channel to the server.

    zoolab worker [--name NAME] [--until-empty]      # or: python -m trainer.worker

Checkpoints: after each epoch `<artifacts>/<run id>/ckpt-<epoch>.pt` is written before
the epoch's metrics are committed, so a run taken over after a crash resumes from its
last committed epoch, with no epoch lost or written twice."""

import argparse
import json
import logging
import os
import signal
import socket
import threading
import time
import traceback
from pathlib import Path

import torch
import torchvision
from PIL import Image
from sqlalchemy.engine import Engine
from sqlmodel import Session

from app import queue
from app.config import Settings, get_settings
from app.db import make_engine
from app.models import Run, Status
from trainer.config import RunConfig
from trainer.data import DatasetError, load
from trainer.train import Diverged, Evaluation, Stopped, TrainState, default_threads, pick_device, train

log = logging.getLogger("zoolab.worker")
MISCLASSIFIED_KEPT = 48
POLL_SECONDS = 0.5


def run_dir(settings: Settings, run_id: int) -> Path:
    return Path(settings.artifact_dir) / str(int(run_id))


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _out_of_memory(e: BaseException) -> bool:
    # CUDA raises torch.OutOfMemoryError; the CPU allocator a plain RuntimeError (ENOMEM).
    return isinstance(e, torch.OutOfMemoryError) or (
        isinstance(e, RuntimeError) and "DefaultCPUAllocator: can't allocate memory" in str(e))


class Heartbeat(threading.Thread):
    """Beats every few seconds; sets `stop` when the run is cancelled or taken from us."""

    def __init__(self, engine: Engine, worker: str, run_id: int, every: float):
        super().__init__(daemon=True, name=f"heartbeat-{run_id}")
        self.engine, self.worker, self.run_id, self.every = engine, worker, run_id, every
        self.stop = threading.Event()
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.every):
            try:
                if queue.heartbeat(self.engine, self.worker, self.run_id):
                    self.stop.set()
            except Exception:  # a busy database must not kill the beat; the next one retries
                log.exception("heartbeat failed")


class Worker:
    def __init__(self, settings: Settings | None = None, name: str | None = None):
        self.settings = settings or get_settings()
        self.engine = make_engine(self.settings.database_url)
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.device = pick_device(self.settings.device)
        self.shutting_down = threading.Event()
        torch.set_num_threads(self.settings.threads or default_threads())

    def serve(self, until_empty: bool = False) -> int:
        """Claim and train runs until stopped (or until the queue is empty). Returns runs done."""
        queue.register_worker(self.engine, self.name, str(self.device))
        done = 0
        try:
            while not self.shutting_down.is_set():
                queue.reap_stale(self.engine, self.settings.stale_seconds, self.settings.max_attempts)
                run_id = queue.claim(self.engine, self.name)
                if run_id is None:
                    if until_empty:
                        break
                    queue.heartbeat(self.engine, self.name, None)
                    self.shutting_down.wait(POLL_SECONDS)
                    continue
                self.execute(run_id)
                done += 1
        finally:
            queue.worker_stopped(self.engine, self.name)
        return done

    def execute(self, run_id: int) -> None:
        with Session(self.engine) as s:
            run = s.get(Run, run_id)
            config = RunConfig(**run.config)
            epochs_done, seconds_before = run.epochs_done, run.total_seconds
        log.info("run %s: %s for %s epochs (from epoch %s)", run_id, config.model, config.epochs, epochs_done + 1)
        beat = Heartbeat(self.engine, self.name, run_id, self.settings.heartbeat_seconds)
        beat.start()
        folder = run_dir(self.settings, run_id)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            resume = None
            ckpt = folder / f"ckpt-{epochs_done}.pt"
            if epochs_done and ckpt.exists():
                resume = torch.load(ckpt, map_location=self.device, weights_only=False)
            else:
                epochs_done, seconds_before = 0, 0.0
            versions = {"torch": torch.__version__, "torchvision": torchvision.__version__,
                        "threads": torch.get_num_threads()}
            if self.device.type == "cuda":
                versions["cuda"] = torch.version.cuda
            device_name = (torch.cuda.get_device_name(self.device) if self.device.type == "cuda"
                           else f"cpu ({os.cpu_count()} cores)")
            queue.start_training(self.engine, run_id, self.name, device_name, versions, epochs_done)
            data = load(config.dataset, self.settings.data_dir, self.device, self.settings.download)
            reporter = _DatabaseReporter(self, run_id, folder, seconds_before)
            result = train(config, data, reporter, self.device, resume=resume,
                           should_stop=lambda: beat.stop.is_set() or self.shutting_down.is_set(),
                           progress_seconds=self.settings.progress_seconds)
            self._write_artifacts(folder, data, config, result, reporter.state)
            queue.end_run(self.engine, run_id, self.name, Status.FINISHED, has_artifacts=True)
            for old in folder.glob("ckpt-*.pt"):
                old.unlink()
        except Stopped:
            if self.shutting_down.is_set():
                queue.release_lost(self.engine, self.settings.max_attempts, worker=self.name,
                                   reason="worker shut down", refund=True)
            else:
                queue.end_run(self.engine, run_id, self.name, Status.CANCELLED)
        except queue.LostRun:
            log.warning("run %s is no longer ours (cancelled, deleted or taken over)", run_id)
        except (Diverged, DatasetError) as e:
            queue.end_run(self.engine, run_id, self.name, Status.FAILED, error=str(e))
        except Exception as e:
            if _out_of_memory(e):
                log.warning("run %s: out of memory (batch size %s)", run_id, config.batch_size)
                queue.end_run(self.engine, run_id, self.name, Status.FAILED,
                              error=f"out of memory on {self.device} with batch size {config.batch_size}: "
                                    f"lower batch_size ({str(e).splitlines()[0]})")
                return
            log.exception("run %s failed", run_id)
            queue.end_run(self.engine, run_id, self.name, Status.FAILED,
                          error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc())
        finally:
            beat.done.set()
            beat.join()
            if self.device.type == "cuda":
                torch.cuda.empty_cache()

    def _write_artifacts(self, folder: Path, data, config: RunConfig, result: Evaluation,
                         state: TrainState | None) -> None:
        test_y = data.test_y[:config.test_subset] if config.test_subset else data.test_y
        pred, true = result.predictions.cpu(), test_y.cpu()
        confusion = torch.bincount(true * 10 + pred, minlength=100).view(10, 10)
        per_class = (confusion.diag().float() / confusion.sum(1).clamp(min=1)).tolist()
        wrong = (pred != true).nonzero().flatten()[:MISCLASSIFIED_KEPT].tolist()
        images = data.test_x[wrong].cpu()
        for k, index in enumerate(wrong):
            array = images[k].permute(1, 2, 0).squeeze(-1).numpy()
            Image.fromarray(array).save(folder / f"misclassified-{k}.png")
        artifacts = {"class_names": list(data.classes), "confusion_matrix": confusion.tolist(),
                     "per_class_acc": per_class, "test_acc": result.acc,
                     "misclassified": [{"k": k, "index": i, "true": int(true[i]), "pred": int(pred[i])}
                                       for k, i in enumerate(wrong)]}
        (folder / "artifacts.json").write_text(json.dumps(artifacts))
        if state is not None:
            _atomic_save(state.model.state_dict(), folder / "model.pt")


class _DatabaseReporter:
    def __init__(self, worker: Worker, run_id: int, folder: Path, seconds_before: float):
        self.worker, self.run_id, self.folder = worker, run_id, folder
        self.started = time.perf_counter() - seconds_before
        self.state: TrainState | None = None

    def _wall(self) -> float:
        return time.perf_counter() - self.started

    def epoch(self, epoch: int, metrics: dict, state: TrainState) -> None:
        self.state = state
        _atomic_save(state.state_dict(), self.folder / f"ckpt-{epoch}.pt")
        queue.record_epoch(self.worker.engine, self.run_id, self.worker.name, epoch, metrics,
                           self._wall(), has_checkpoint=True)
        _atomic_save(state.model.state_dict(), self.folder / "model.pt")
        for old in self.folder.glob("ckpt-*.pt"):
            if old.name != f"ckpt-{epoch}.pt":
                old.unlink()

    def progress(self, epoch: float, fraction: float, train_loss: float, train_acc: float,
                 eta_seconds: float | None) -> None:
        queue.record_progress(self.worker.engine, self.run_id, self.worker.name, epoch, fraction,
                              train_loss, train_acc, self._wall(), eta_seconds)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="zoolab worker", description="Train queued runs from the database.")
    p.add_argument("--name", help="worker name shown in GET /workers (default host-pid)")
    p.add_argument("--until-empty", action="store_true", help="exit when the queue is empty")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(levelname)s %(message)s")
    worker = Worker(name=args.name)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: worker.shutting_down.set())
    log.info("worker %s on %s, database %s", worker.name, worker.device, worker.settings.database_url)
    worker.serve(until_empty=args.until_empty)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
