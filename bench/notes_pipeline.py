"""The notes' reference pipeline, as a notebook user writes it: a torchvision dataset
of PIL images, `Compose([ToTensor(), Normalize(...)])` (plus the notes' RandomChoice
augmentation for mnist-best-augment), `DataLoader(batch_size, shuffle=True)` and the
plain per-batch loop. Shared by bench/train_speed.py and bench/time_to_accuracy.py.

Same network (`trainer.nets.build_model`), optimiser, scheduler, batch size, learning
rate and seed as a zoolab run of the same `RunConfig`, so the two differ only in the
pipeline. Nothing is handicapped: `num_workers` is the caller's choice (0 as in a
notebook), the optimiser is torch's default implementation for the same hyper-parameters,
evaluation runs under `torch.no_grad()`.

CIFAR-10 is here in the official *binary* format (`cifar-10-batches-bin/*.bin`), which
torchvision cannot read; `CifarBin` is the minimal Dataset a user with that format writes:
all records read into memory once, each item a PIL image as torchvision's CIFAR10 gives.
"""

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Subset
from torchvision import transforms

from trainer.config import RunConfig
from trainer.datasets import NORMALIZATIONS
from trainer.nets import build_model


class CifarBin(Dataset):
    """CIFAR-10 from its binary version: (PIL image, label) per item."""

    def __init__(self, root: str | Path, train: bool, transform=None):
        folder = Path(root) / "cifar-10-batches-bin"
        names = [f"data_batch_{i}.bin" for i in range(1, 6)] if train else ["test_batch.bin"]
        records = np.concatenate([np.fromfile(folder / n, np.uint8).reshape(-1, 3073) for n in names])
        self.labels = records[:, 0].astype(np.int64).tolist()
        self.images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy()  # HWC for PIL
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        image = Image.fromarray(self.images[i])
        if self.transform is not None:
            image = self.transform(image)
        return image, self.labels[i]


def notes_transforms(config: RunConfig) -> tuple[transforms.Compose, transforms.Compose]:
    """(train transform, test transform) of the notes for this run config."""
    mean, std = NORMALIZATIONS[config.normalize].mean, NORMALIZATIONS[config.normalize].std
    base = [transforms.ToTensor(), transforms.Normalize(mean, std)]
    augment = []
    if config.augment == "mnist-notes":
        augment = [transforms.RandomChoice([
            transforms.GaussianBlur(kernel_size=5, sigma=0.3),
            transforms.RandomRotation(degrees=10),
            transforms.RandomCrop(size=28, padding=1, padding_mode="reflect"),
        ])]
    elif config.augment == "autoaugment":
        augment = [transforms.AutoAugment(transforms.AutoAugmentPolicy.CIFAR10)]
    elif config.augment == "flip-crop":
        augment = [transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip()]
    return transforms.Compose(augment + base), transforms.Compose(base)


def datasets(config: RunConfig, data_dir: str | Path) -> tuple[Dataset, Dataset]:
    """The notebook's train and test datasets (with config.train_subset / test_subset as Subsets)."""
    train_tf, test_tf = notes_transforms(config)
    if config.dataset == "mnist":
        train = torchvision.datasets.MNIST(root=str(data_dir), train=True, download=False, transform=train_tf)
        test = torchvision.datasets.MNIST(root=str(data_dir), train=False, download=False, transform=test_tf)
    elif config.dataset == "cifar10":
        train, test = CifarBin(data_dir, True, train_tf), CifarBin(data_dir, False, test_tf)
    else:
        raise ValueError(f"the notes' pipeline covers mnist and cifar10, not {config.dataset}")
    if config.train_subset:
        train = Subset(train, range(config.train_subset))
    if config.test_subset:
        test = Subset(test, range(config.test_subset))
    return train, test


def make_optimizer(config: RunConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    """The notebook's `optim.Adam(model.parameters(), lr=...)`: torch's default implementation."""
    if config.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                               nesterov=config.momentum > 0, weight_decay=config.weight_decay)
    cls = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
    return cls(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


def make_scheduler(config: RunConfig, optimizer, steps_per_epoch: int):
    if config.scheduler == "exponential":
        return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=config.gamma)
    if config.scheduler == "polynomial":
        return torch.optim.lr_scheduler.PolynomialLR(optimizer, total_iters=config.total_iters, power=config.power)
    if config.scheduler == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, epochs=config.epochs,
                                                   steps_per_epoch=steps_per_epoch)
    return None


def train_notes(config: RunConfig, train_set: Dataset, test_set: Dataset, num_workers: int = 0,
                on_epoch: Callable[[int, dict], bool | None] | None = None) -> list[dict]:
    """Train `config` the notebook way; one dict per epoch (cumulative wall seconds, train
    seconds, images/s, train loss, test accuracy). `on_epoch(epoch, record)` returning True
    stops early (time-to-accuracy)."""
    torch.manual_seed(config.seed)
    model = build_model(config.model)
    train_loader = DataLoader(train_set, batch_size=config.batch_size, shuffle=True, num_workers=num_workers)
    test_loader = DataLoader(test_set, batch_size=config.batch_size, shuffle=False, num_workers=num_workers)
    optimizer = make_optimizer(config, model)
    scheduler = make_scheduler(config, optimizer, len(train_loader))
    records = []
    started = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        model.train()
        epoch_start = time.perf_counter()
        running_loss, seen = 0.0, 0
        for x, y in train_loader:
            optimizer.zero_grad()
            out = model(x)
            loss = F.cross_entropy(out, y)
            loss.backward()
            optimizer.step()
            if config.scheduler == "onecycle":
                scheduler.step()
            running_loss += loss.item() * len(y)
            seen += len(y)
        train_seconds = time.perf_counter() - epoch_start
        model.eval()
        correct = 0
        with torch.no_grad():
            for x, y in test_loader:
                correct += (model(x).argmax(1) == y).sum().item()
        if scheduler is not None and config.scheduler != "onecycle":
            scheduler.step()
        record = {"epoch": epoch, "wall_seconds": time.perf_counter() - started,
                  "train_seconds": train_seconds, "images_per_second": seen / train_seconds,
                  "train_loss": running_loss / seen, "test_acc": correct / len(test_set)}
        records.append(record)
        if on_epoch is not None and on_epoch(epoch, record):
            break
    return records
