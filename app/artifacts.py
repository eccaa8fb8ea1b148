"""The files of a run, and the one place that knows their layout:

    <artifact dir>/<run id>/
        ckpt-<epoch>.pt         resume state after that epoch (weights, optimiser, scheduler, RNG)
        model.pt                the weights of the last finished epoch, with the config and layers
        artifacts.json          confusion matrix, per-class accuracy, misclassified test images
        misclassified-<k>.png   the k-th misclassified test image

Folders are named by the integer run id only: no path from a request ever reaches the file
system. Every file is written to a temporary name and renamed into place, so a reader (or a
worker resuming after a crash) never sees half a file. Torch-free: the worker passes in the
function that serialises a checkpoint."""

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


class RunFiles:
    def __init__(self, artifact_dir: Path | str, run_id: int):
        self.run_id = int(run_id)
        self.folder = Path(artifact_dir) / str(self.run_id)

    def checkpoint(self, epoch: int) -> Path:
        return self.folder / f"ckpt-{int(epoch)}.pt"

    @property
    def model(self) -> Path:
        return self.folder / "model.pt"

    @property
    def artifacts(self) -> Path:
        return self.folder / "artifacts.json"

    def misclassified(self, k: int) -> Path:
        return self.folder / f"misclassified-{int(k)}.png"

    def write(self, path: Path, write: Callable[[IO[bytes]], Any]) -> None:
        """Write `path` atomically with `write(file)`; on any error (a full disk) no partial file stays."""
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        try:
            with open(tmp, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def write_json(self, path: Path, data: Any) -> None:
        self.write(path, lambda f: f.write(json.dumps(data).encode()))

    def read_json(self) -> dict:
        return json.loads(self.artifacts.read_text())

    def remove_partial(self) -> None:
        """Delete the temporary files of a write that never finished (its writer was killed)."""
        for tmp in self.folder.glob("*.tmp"):
            tmp.unlink(missing_ok=True)

    def keep_only_checkpoint(self, epoch: int | None) -> None:
        """Delete every resume checkpoint but `epoch`'s (all of them when None)."""
        keep = None if epoch is None else self.checkpoint(epoch).name
        for old in self.folder.glob("ckpt-*.pt"):
            if old.name != keep:
                old.unlink(missing_ok=True)

    def delete(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
