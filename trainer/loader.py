"""The batch source of the training loop: one epoch of shuffled batches at a time, each one
sliced by index from the uint8 images on the device, augmented, normalised and laid out for
the model there, so the loop body is only forward / backward / step / report.

    batches = Batches(images, labels, batch_size=128, generator=g, normalize=normalizer(...))
    batches.augment = "mnist-notes"
    for inputs, labels in batches:      # one epoch
        ...

Every random number (the order, the augmentation) comes from `generator`, in a fixed
sequence, so a seed gives one result and a resumed run continues the same sequence."""

from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from trainer.augment import augment_batch


class Batches:
    def __init__(self, images: Tensor, labels: Tensor, batch_size: int, generator: torch.Generator,
                 normalize: Callable[[Tensor], Tensor], channels_last: bool = False):
        self.images, self.labels = images, labels
        self.batch_size = batch_size
        self.generator = generator
        self.normalize = normalize
        self.channels_last = channels_last
        self.augment = "none"

    def __len__(self) -> int:
        # A last batch of one image is dropped: it would break BatchNorm's training statistics.
        n, size = len(self.images), self.batch_size
        return n // size + (1 if n % size > 1 else 0)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        order = torch.randperm(len(self.images), generator=self.generator, device=self.images.device)
        for step in range(len(self)):
            idx = order[step * self.batch_size:(step + 1) * self.batch_size]
            # index_select: the same rows as images[idx], several times faster on a CPU
            inputs = self.normalize(augment_batch(self.augment, self.images.index_select(0, idx), self.generator))
            if self.channels_last:
                inputs = inputs.contiguous(memory_format=torch.channels_last)
            yield inputs, self.labels.index_select(0, idx)
