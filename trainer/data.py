"""Datasets as whole uint8 tensors on the training device.

A dataset is loaded once per worker process and kept (on its device) between runs, as long
as its files stay as they were (same size and modification time); a dataset that fails to
load is never kept. Every label is checked to name a class and every image file to hold
bytes (0–255), so a damaged file fails here, by its name, not as an error deep in training.
Sources, in order: the files in the data directory in their published layouts
(torchvision's MNIST/FashionMNIST `raw/` IDX files; CIFAR-10's official binary version,
or torchvision's python version), Debian's `dataset-fashion-mnist` package (the places are
listed in trainer/datafiles.py), then torchvision's download when downloads are allowed.

    python -m trainer.data DATA_DIR                 # load every dataset found there and print shapes
    python -m trainer.data DATA_DIR --download mnist cifar10    # fetch missing ones, then load
"""

import argparse
import gzip
import sys
import zlib
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

from trainer.datafiles import IDX_FILES, Place, find, places
from trainer.datasets import DATASETS, NORMALIZATIONS


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


def _check_labels(labels: np.ndarray, source: Path, dataset: str) -> None:
    classes = len(DATASETS[dataset].class_names)
    bad = np.flatnonzero((labels < 0) | (labels >= classes))
    if bad.size:
        raise DatasetError(f"{source} is damaged: label {int(labels[bad[0]])} at index {int(bad[0])} "
                           f"({bad.size} such) is not a class of {dataset} (0–{classes - 1}); "
                           "delete it and fetch it again")


IDX_UBYTE = 0x08  # the IDX type code of unsigned bytes: pixels 0-255, labels


def _read_idx(path: Path, expect_ndim: int) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:  # a truncated or damaged .gz
        raise DatasetError(f"{path} is damaged or truncated ({e}); delete it and fetch it again") from e
    if len(raw) < 4 + 4 * expect_ndim:
        raise DatasetError(f"{path} is truncated: {len(raw)} bytes, not an IDX file")
    if raw[:3] != bytes([0, 0, IDX_UBYTE]):
        raise DatasetError(f"{path} is damaged: its header {raw[:4].hex()} is not that of an IDX file of "
                           f"bytes (00 00 08 0{expect_ndim}); delete it and fetch it again")
    ndim = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = 4 + 4 * ndim + int(np.prod(dims))
    if ndim != expect_ndim or len(raw) != expected:
        raise DatasetError(f"{path} is damaged or truncated: {len(raw)} bytes, expected {expected} "
                           f"for an IDX array of shape {dims}; delete it and fetch it again")
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _idx_split(name: str, place: Place, split: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = (place.path(f) for f in IDX_FILES[split])
    x, y = _read_idx(images, 3), _read_idx(labels, 1)
    _check_labels(y, labels, name)
    if len(x) != len(y):
        raise DatasetError(f"{images} has {len(x)} images but {labels} has {len(y)} labels")
    return x[:, None], y


def _load_mnist_like(name: str, data_dir: Path, download: bool):
    folder = DATASETS[name].folder
    found = find(name, data_dir)
    if found is None and download:
        from torchvision import datasets
        cls = datasets.MNIST if name == "mnist" else datasets.FashionMNIST
        for train in (True, False):
            cls(root=str(data_dir), train=train, download=True)
        found = find(name, data_dir)
    if found is None:
        candidates = places(name, data_dir)
        wanted = ", ".join(candidates[0].files)
        hint = " or `apt-get install dataset-fashion-mnist`" if name == "fashion-mnist" else ""
        raise DatasetError(f"{name} not found: looked for {wanted} (optionally .gz) in "
                           f"{', '.join(str(c.folder) for c in candidates)}. Set ZOOLAB_DATA_DIR to a folder "
                           f"holding {folder}/raw/, or allow downloads (ZOOLAB_DOWNLOAD=true){hint}.")
    return (*_idx_split(name, found, "train"), *_idx_split(name, found, "test"))


CIFAR_RECORD = 3073


def _read_cifar_bin(path: Path) -> tuple[np.ndarray, np.ndarray]:
    raw = np.fromfile(path, np.uint8)
    if raw.size == 0 or raw.size % CIFAR_RECORD:
        raise DatasetError(f"{path} is truncated or damaged: {raw.size} bytes is not a whole number of "
                           f"{CIFAR_RECORD}-byte records; delete it and fetch CIFAR-10 again")
    records = raw.reshape(-1, CIFAR_RECORD)
    labels = records[:, 0].astype(np.int64)
    _check_labels(labels, path, "cifar10")
    return records[:, 1:].reshape(-1, 3, 32, 32), labels


def _load_cifar10(data_dir: Path, download: bool):
    binary, python = places("cifar10", data_dir)
    if not binary.missing():
        parts = [_read_cifar_bin(binary.folder / f) for f in binary.files]
        train_x = np.concatenate([p[0] for p in parts[:5]])
        train_y = np.concatenate([p[1] for p in parts[:5]])
        return train_x, train_y, *parts[5]
    py_dir = python.folder
    if py_dir.exists() or download:
        from torchvision import datasets
        try:
            sets = [datasets.CIFAR10(root=str(data_dir), train=t, download=download) for t in (True, False)]
        except RuntimeError as e:
            raise DatasetError(f"cifar10 in {py_dir} is unusable ({e}); delete it and fetch it again") from e
        for s, source in zip(sets, (py_dir / "data_batch_*", py_dir / "test_batch")):
            if s.data.dtype != np.uint8:
                raise DatasetError(f"{source} is damaged: images of {s.data.dtype}, not bytes (0–255); "
                                   "delete it and fetch it again")
            _check_labels(np.asarray(s.targets), source, "cifar10")
        return (*(x for s in sets[:1] for x in (s.data.transpose(0, 3, 1, 2), np.asarray(s.targets))),
                sets[1].data.transpose(0, 3, 1, 2), np.asarray(sets[1].targets))
    raise DatasetError(f"cifar10 not found: missing {', '.join(binary.missing())} in {binary.folder} "
                       f"(the official binary version), "
                       f"and no {py_dir} (torchvision's python version). Set ZOOLAB_DATA_DIR to a folder "
                       f"holding one of them, or allow downloads (ZOOLAB_DOWNLOAD=true).")


# (dataset, data dir, device) -> (the files' signature when loaded, the dataset)
_CACHE: dict[tuple[str, str, str], tuple[tuple, Dataset]] = {}


def _signature(name: str, data_dir: Path) -> tuple:
    """(path, size, modification time) of each file the dataset would be read from; () if not found."""
    for place in places(name, data_dir):
        if not place.missing():
            return tuple((str(f), (st := f.stat()).st_size, st.st_mtime_ns)
                         for f in map(place.path, place.files))
    return ()


def load(name: str, data_dir: Path, device: torch.device, download: bool = False) -> Dataset:
    """The dataset as tensors on `device`, loaded once per process and again when its files change."""
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset '{name}'; known: {', '.join(DATASETS)}")
    data_dir = Path(data_dir)
    key = (name, str(data_dir.resolve()), str(device))
    signature = _signature(name, data_dir)
    cached = _CACHE.pop(key, None)  # a changed file: the old tensors go before the new ones load
    if cached and signature and cached[0] == signature:
        _CACHE[key] = cached
        return cached[1]
    del cached
    loader = _load_cifar10 if name == "cifar10" else partial(_load_mnist_like, name)
    arrays = loader(data_dir, download)
    train_x, train_y, test_x, test_y = (torch.from_numpy(np.array(a)) for a in arrays)
    dataset = Dataset(name, train_x.to(device), train_y.long().to(device),
                      test_x.to(device), test_y.long().to(device), DATASETS[name].class_names)
    _CACHE[key] = (signature or _signature(name, data_dir), dataset)  # (a download made the files)
    return dataset


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m trainer.data", description="Load datasets and print their shapes.")
    p.add_argument("data_dir", nargs="?", default="data", type=Path)
    p.add_argument("datasets", nargs="*", default=list(DATASETS), metavar="DATASET", help=", ".join(DATASETS))
    p.add_argument("--download", action="store_true", help="fetch missing ones with torchvision first")
    args = p.parse_intermixed_args(argv)
    failed = 0
    for ds in args.datasets:
        try:
            d = load(ds, args.data_dir, torch.device("cpu"), args.download)
            print(f"{ds}: train {tuple(d.train_x.shape)} test {tuple(d.test_x.shape)} {d.nbytes / 2**20:.0f} MiB")
        except (DatasetError, OSError, RuntimeError) as e:  # a failed download: OSError, RuntimeError
            print(f"{ds}: {e}")
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
