"""The facts of every dataset zoolab trains on, in one torch-free table: image shape, classes
and their names, the folder it lives in, which normalisations and augmentations fit it.

Everything else derives from this table — the run config's choices and their checks, the
shape checker's input shape, the loader's class names, the dashboard's options — so an
option the API accepts can never crash the worker.

    python -m trainer.datasets       # print the table
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    channels: int
    size: int                      # images are size x size
    class_names: tuple[str, ...]
    folder: str                    # under the data directory (torchvision's / the publisher's name)
    description: str

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, self.size, self.size)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


DIGITS = tuple(str(d) for d in range(10))

DATASETS: dict[str, DatasetSpec] = {d.name: d for d in (
    DatasetSpec("mnist", 1, 28, DIGITS, "MNIST", "handwritten digits, 60,000 train / 10,000 test"),
    DatasetSpec("fashion-mnist", 1, 28,
                ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                 "Bag", "Ankle boot"),
                "FashionMNIST", "Zalando's clothes, MNIST's shape: 60,000 train / 10,000 test"),
    DatasetSpec("cifar10", 3, 32,
                ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
                "cifar-10-batches-bin", "32x32 colour photos, 50,000 train / 10,000 test"),
)}


@dataclass(frozen=True)
class Normalization:
    """Normalize(mean, std) on [0, 1] pixels; one value is broadcast over every channel."""
    mean: tuple[float, ...]
    std: tuple[float, ...]
    description: str

    def fits(self, dataset: DatasetSpec) -> bool:
        return len(self.mean) in (1, dataset.channels)


NORMALIZATIONS: dict[str, Normalization] = {
    # The notes normalise every dataset, CIFAR-10 included, with MNIST's statistics.
    "mnist": Normalization((0.1307,), (0.3081,), "the notes' (0.1307, 0.3081), any dataset"),
    "cifar": Normalization((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), "CIFAR-10 per channel"),
    "inception": Normalization((0.3945,), (0.2896,), "the notes' inception runs"),
}

# Augmentation name -> the channel count it is written for (None: any).
AUGMENTS: dict[str, int | None] = {
    "none": None,
    "mnist-notes": 1,   # blur / rotate / crop of a digit
    "autoaugment": 3,   # torchvision's CIFAR-10 policy
    "flip-crop": 3,
}


def get_dataset(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS)}") from None


def misfit(dataset: str, *, normalize: str | None = None, augment: str | None = None) -> str | None:
    """Why `normalize` or `augment` does not fit `dataset` (a sentence), or None if they fit."""
    spec = get_dataset(dataset)
    if normalize is not None and not NORMALIZATIONS[normalize].fits(spec):
        return (f"normalize {normalize!r} has {len(NORMALIZATIONS[normalize].mean)} channel statistics; "
                f"{dataset} images have {spec.channels} channel(s)")
    wanted = AUGMENTS.get(augment) if augment is not None else None
    if wanted is not None and wanted != spec.channels:
        fitting = [a for a, c in AUGMENTS.items() if c in (None, spec.channels)]
        return (f"augment {augment!r} is for {wanted}-channel images; {dataset} has {spec.channels}"
                f" (fits: {', '.join(fitting)})")
    return None


if __name__ == "__main__":
    for d in DATASETS.values():
        print(f"{d.name:14} {'x'.join(map(str, d.shape)):9} {d.num_classes:3} classes  {d.description}")
