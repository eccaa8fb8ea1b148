"""Layer widths as parameters of a search: which layers of a network have a width that may
change (the out features of a linear layer, the out channels of a conv or convblock), and the
network with some of them changed, every later layer's input following so the network stays
whole. Torch-free: the server builds a sweep's trials with it.

A width is named by its layer's 1-based index, as the shape checker counts (`layer 2 expects
...`). The last such layer gives the classes, so its width is not a parameter.

    python -m trainer.widths mnist 2=128 flatten "linear 784 60" relu "linear 60 10"
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace

from trainer.layers import LayerError, parse_layers
from trainer.shapes import check

SIZEABLE = ("linear", "conv", "convblock")       # the second number is the width: IN OUT ...
# Kinds whose first number is what they receive (features or channels): they follow a change.
FOLLOWERS = ("linear", "bn1d", "bn2d", "conv", "convblock", "resblock", "inception")


def sizeable(layers: Sequence[str]) -> dict[int, int]:
    """{1-based index: width} of the layers whose width may change (not the classifier's)."""
    specs = parse_layers(layers)
    found = {i: int(spec.numbers[1]) for i, spec in enumerate(specs, 1) if spec.kind in SIZEABLE}
    if found:
        del found[max(found)]
    return found


def resize(layers: Sequence[str], dataset: str, widths: Mapping[int, int]) -> list[str]:
    """`layers` with layer i's width set to widths[i] and every later layer's input following;
    checked whole (trainer.shapes.check: a LayerError if it refuses, e.g. too many parameters).
    Widths never change a height or a width of an image, so the original network's shapes
    give the spatial sizes a flatten multiplies."""
    table = check(layers, dataset)
    allowed = sizeable(layers)
    for index in widths:
        if index not in allowed:
            raise LayerError(index, f"layer {index} has no width to change")
    size = table.input_shape[0]   # channels or features flowing into the next layer
    out = []
    for i, row in enumerate(table.rows, 1):
        spec, numbers = row.spec, list(row.spec.numbers)
        received = table.input_shape if i == 1 else table.rows[i - 2].shape
        if spec.kind in FOLLOWERS:
            numbers[0] = size
        if i in widths:
            numbers[1] = int(widths[i])
        if spec.kind == "flatten":
            size *= math.prod(received[1:])
        elif spec.kind in SIZEABLE:
            size = numbers[1]
        elif spec.kind == "inception":
            size = numbers[1] + numbers[3] + numbers[5] + numbers[6]
        out.append(str(replace(spec, numbers=tuple(numbers))))
    check(out, dataset)
    return out


if __name__ == "__main__":
    dataset, change, *network = sys.argv[1:]
    index, width = change.split("=")
    try:
        print("\n".join(resize(network, dataset, {int(index): int(width)})))
    except LayerError as e:
        sys.exit(e.message)
