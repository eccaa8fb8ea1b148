"""The files of a run, and the one place that knows their layout:

    <artifact dir>/<run id>/
        ckpt-<epoch>.pt         resume state after that epoch (weights, optimiser, scheduler, RNG)
        model.pt                the weights of the last finished epoch, with the config and layers
        artifacts.json          confusion matrix, per-class accuracy, misclassified test images
        misclassified-<k>.png   the k-th misclassified test image

Folders are named by the integer run id only: no path from a request ever reaches the file
system. Every file is written to a temporary name and renamed into place, so a reader (or a
worker resuming after a crash) never sees half a file; a write that fails leaves no partial
file, and one that fails for want of space raises `DiskFull`, which says so and where. The
last two resume checkpoints are kept, so a damaged last one still leaves one to resume from.
Torch-free: the worker passes in the function that serialises a checkpoint."""

import errno
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

# Less free space than this after a failed write means the write failed for want of space
# (torch reports a full disk as "unexpected pos ..." and keeps the OSError only as context).
FULL_BYTES = 1 << 20


class DiskFull(OSError):
    """No space left where a run's files go; the message names the folder."""


def _no_space(exc: BaseException | None) -> bool:
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


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
        """Write `path` atomically with `write(file)`; on any error no partial file stays."""
        tmp = path.with_name(path.name + ".tmp")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException as e:
            full = _no_space(e) or (isinstance(e, Exception) and self._free_bytes() < FULL_BYTES)
            tmp.unlink(missing_ok=True)
            if full:
                raise DiskFull(f"disk full: no space left on the file system of {self.folder} "
                               f"while writing {path.name}; free some space there (or set ZOOLAB_ARTIFACT_DIR "
                               "to a folder with room), then retry the run") from e
            raise

    def _free_bytes(self) -> int:
        try:
            return shutil.disk_usage(self.folder if self.folder.exists() else self.folder.parent).free
        except OSError:
            return FULL_BYTES

    def write_json(self, path: Path, data: Any) -> None:
        self.write(path, lambda f: f.write(json.dumps(data).encode()))

    def read_json(self) -> dict:
        return json.loads(self.artifacts.read_text())

    def remove_partial(self) -> None:
        """Delete the temporary files of a write that never finished (its writer was killed)."""
        for tmp in self.folder.glob("*.tmp"):
            tmp.unlink(missing_ok=True)

    def prune_checkpoints(self, latest: int | None) -> None:
        """Delete every resume checkpoint but those of epochs `latest` and `latest - 1` (all when None)."""
        keep = set() if latest is None else {self.checkpoint(latest).name, self.checkpoint(latest - 1).name}
        for old in self.folder.glob("ckpt-*.pt"):
            if old.name not in keep:
                old.unlink(missing_ok=True)

    def delete(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
