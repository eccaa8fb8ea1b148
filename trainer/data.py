"""Datasets as whole uint8 tensors on the training device.

A dataset is loaded once per worker process and kept (on its device) between runs.
Sources, in order: the files in the data directory in their published layouts
(torchvision's MNIST/FashionMNIST `raw/` IDX files; CIFAR-10's official binary version,
or torchvision's python version), Debian's `dataset-fashion-mnist` package, then
torchvision's download when downloads are allowed.

    python -m trainer.data DATA_DIR     # load every dataset found there and print shapes
"""

import gzip
import sys
import zlib
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

from trainer.datasets import DATASETS, NORMALIZATIONS

DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


class DatasetError(RuntimeError):
    """A dataset is missing or damaged; the message says which files, where and what to do."""


@dataclass
class Dataset:
    name: str
    train_x: torch.Tensor  # uint8 (N, C, H, W) on the device
    train_y: torch.Tensor  # int64 (N,)
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: tuple[str, ...]

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.train_x, self.train_y, self.test_x, self.test_y))


def normalizer(name: str, channels: int, device: torch.device):
    """x_uint8 -> normalised float32, as ToTensor() + Normalize(mean, std) would give."""
    mean, std = NORMALIZATIONS[name].mean, NORMALIZATIONS[name].std
    mean_t = torch.tensor(mean, device=device).view(1, -1, 1, 1).expand(1, channels, 1, 1)
    std_t = torch.tensor(std, device=device).view(1, -1, 1, 1).expand(1, channels, 1, 1)
    scale = (1.0 / (255.0 * std_t)).contiguous()
    shift = (-mean_t / std_t).contiguous()
    return lambda x: x.float().mul_(scale).add_(shift)


def _read_idx(path: Path, expect_ndim: int) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:  # a truncated or damaged .gz
        raise DatasetError(f"{path} is damaged or truncated ({e}); delete it and fetch it again") from e
    if len(raw) < 4 + 4 * expect_ndim:
        raise DatasetError(f"{path} is truncated: {len(raw)} bytes, not an IDX file")
    ndim = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = 4 + 4 * ndim + int(np.prod(dims))
    if ndim != expect_ndim or len(raw) != expected:
        raise DatasetError(f"{path} is damaged or truncated: {len(raw)} bytes, expected {expected} "
                           f"for an IDX array of shape {dims}; delete it and fetch it again")
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


_IDX = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def _find_idx_dir(candidates: list[Path]) -> Path | None:
    for d in candidates:
        if all((d / f).exists() or (d / (f + ".gz")).exists() for pair in _IDX.values() for f in pair):
            return d
    return None


def _idx_split(d: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = ((d / f) if (d / f).exists() else (d / (f + ".gz")) for f in _IDX[split])
    x, y = _read_idx(images, 3), _read_idx(labels, 1)
    if len(x) != len(y):
        raise DatasetError(f"{images} has {len(x)} images but {labels} has {len(y)} labels")
    return x[:, None], y


def _load_mnist_like(name: str, data_dir: Path, download: bool):
    folder = DATASETS[name].folder
    candidates = [data_dir / folder / "raw"] + ([DEBIAN_FASHION_DIR] if name == "fashion-mnist" else [])
    found = _find_idx_dir(candidates)
    if found is None and download:
        from torchvision import datasets
        cls = datasets.MNIST if name == "mnist" else datasets.FashionMNIST
        for train in (True, False):
            cls(root=str(data_dir), train=train, download=True)
        found = _find_idx_dir(candidates)
    if found is None:
        wanted = ", ".join(f for pair in _IDX.values() for f in pair)
        hint = " or `apt-get install dataset-fashion-mnist`" if name == "fashion-mnist" else ""
        raise DatasetError(f"{name} not found: looked for {wanted} (optionally .gz) in "
                           f"{', '.join(str(c) for c in candidates)}. Set ZOOLAB_DATA_DIR to a folder "
                           f"holding {folder}/raw/, or allow downloads (ZOOLAB_DOWNLOAD=true){hint}.")
    return (*_idx_split(found, "train"), *_idx_split(found, "test"))


CIFAR_RECORD = 3073


def _read_cifar_bin(path: Path) -> tuple[np.ndarray, np.ndarray]:
    raw = np.fromfile(path, np.uint8)
    if raw.size == 0 or raw.size % CIFAR_RECORD:
        raise DatasetError(f"{path} is truncated or damaged: {raw.size} bytes is not a whole number of "
                           f"{CIFAR_RECORD}-byte records; delete it and fetch CIFAR-10 again")
    records = raw.reshape(-1, CIFAR_RECORD)
    return records[:, 1:].reshape(-1, 3, 32, 32), records[:, 0].astype(np.int64)


def _load_cifar10(data_dir: Path, download: bool):
    bin_dir = data_dir / DATASETS["cifar10"].folder
    files = [bin_dir / f"data_batch_{i}.bin" for i in range(1, 6)] + [bin_dir / "test_batch.bin"]
    if all(f.exists() for f in files):
        parts = [_read_cifar_bin(f) for f in files]
        train_x = np.concatenate([p[0] for p in parts[:5]])
        train_y = np.concatenate([p[1] for p in parts[:5]])
        return train_x, train_y, *parts[5]
    py_dir = data_dir / "cifar-10-batches-py"
    if py_dir.exists() or download:
        from torchvision import datasets
        try:
            sets = [datasets.CIFAR10(root=str(data_dir), train=t, download=download) for t in (True, False)]
        except RuntimeError as e:
            raise DatasetError(f"cifar10 in {py_dir} is unusable ({e}); delete it and fetch it again") from e
        return (*(x for s in sets[:1] for x in (s.data.transpose(0, 3, 1, 2), np.asarray(s.targets))),
                sets[1].data.transpose(0, 3, 1, 2), np.asarray(sets[1].targets))
    missing = ", ".join(f.name for f in files if not f.exists())
    raise DatasetError(f"cifar10 not found: missing {missing} in {bin_dir} (the official binary version), "
                       f"and no {py_dir} (torchvision's python version). Set ZOOLAB_DATA_DIR to a folder "
                       f"holding one of them, or allow downloads (ZOOLAB_DOWNLOAD=true).")


_CACHE: dict[tuple[str, str, str], Dataset] = {}


def load(name: str, data_dir: Path, device: torch.device, download: bool = False) -> Dataset:
    """The dataset as tensors on `device`, loaded once per process."""
    key = (name, str(Path(data_dir).resolve()), str(device))
    if key not in _CACHE:
        if name not in DATASETS:
            raise DatasetError(f"unknown dataset '{name}'; known: {', '.join(DATASETS)}")
        loader = _load_cifar10 if name == "cifar10" else partial(_load_mnist_like, name)
        arrays = loader(Path(data_dir), download)
        train_x, train_y, test_x, test_y = (torch.from_numpy(np.array(a)) for a in arrays)
        _CACHE[key] = Dataset(name, train_x.to(device), train_y.long().to(device),
                              test_x.to(device), test_y.long().to(device), DATASETS[name].class_names)
    return _CACHE[key]


if __name__ == "__main__":
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "data")
    for ds in ("mnist", "fashion-mnist", "cifar10"):
        try:
            d = load(ds, root, torch.device("cpu"))
            print(f"{ds}: train {tuple(d.train_x.shape)} test {tuple(d.test_x.shape)} {d.nbytes / 2**20:.0f} MiB")
        except DatasetError as e:
            print(f"{ds}: {e}")
