"""Where each dataset's files lie on disk, and which are missing. Torch-free, so that
`zoolab data` (app/preflight.py) checks a data folder before a command starts, looking in the
same places, in the same order, as the loader (trainer/data.py) reads from.

Under a data folder, in the layouts their publishers and torchvision use:
    MNIST/raw/, FashionMNIST/raw/  train-images-idx3-ubyte, train-labels-idx1-ubyte,
                                   t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (each maybe .gz)
    cifar-10-batches-bin/          data_batch_1.bin ... data_batch_5.bin, test_batch.bin
                                   (the official binary version)
    cifar-10-batches-py/           data_batch_1 ... data_batch_5, test_batch, batches.meta
                                   (the python version, which torchvision downloads)
Fashion-MNIST is also found where Debian's `dataset-fashion-mnist` installs it.

    python -m trainer.datafiles [DATA_DIR]     # where each dataset is, or what is missing
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from trainer.datasets import DATASETS, get_dataset

DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
CIFAR_PY_FOLDER = "cifar-10-batches-py"
_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)


@dataclass(frozen=True)
class Place:
    """A folder that may hold a dataset, and the files it must hold for that."""
    folder: Path
    files: tuple[str, ...]
    gzip_ok: bool = False  # IDX files may stay gzipped, as torchvision downloads them

    def path(self, name: str) -> Path | None:
        """The file `name` here (or its .gz where allowed), if it exists."""
        for candidate in (name, f"{name}.gz") if self.gzip_ok else (name,):
            if (self.folder / candidate).exists():
                return self.folder / candidate
        return None

    def missing(self) -> list[str]:
        return [f for f in self.files if self.path(f) is None]


def places(dataset: str, data_dir: Path) -> list[Place]:
    """Every place `dataset` may lie, in the order they are tried."""
    spec = get_dataset(dataset)
    if dataset == "cifar10":
        return [Place(data_dir / spec.folder, tuple(f"{b}.bin" for b in _BATCHES)),
                Place(data_dir / CIFAR_PY_FOLDER, _BATCHES + ("batches.meta",))]
    idx = tuple(f for pair in IDX_FILES.values() for f in pair)
    folders = [data_dir / spec.folder / "raw"] + ([DEBIAN_FASHION_DIR] if dataset == "fashion-mnist" else [])
    return [Place(folder, idx, gzip_ok=True) for folder in folders]


def find(dataset: str, data_dir: Path) -> Place | None:
    """The first place that holds all of `dataset`'s files, or None."""
    return next((p for p in places(dataset, data_dir) if not p.missing()), None)


if __name__ == "__main__":
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "data")
    for name in DATASETS:
        found = find(name, root)
        print(f"{name:14} " + (str(found.folder) if found else "missing: " + "; ".join(
            f"{', '.join(p.missing())} in {p.folder}" for p in places(name, root))))
