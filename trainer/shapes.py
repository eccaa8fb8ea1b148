"""The shape checker: walks a network's layers from its dataset's image shape and gives, per
layer, the output shape and the parameter count — or refuses, with the layer's index and a
sentence, every network torch would fail on later, and those too big for one machine.

Torch-free (the server checks networks with it). `tests/test_shapes.py` holds it to the
networks torch builds from the same layers.

    python -m trainer.shapes mnist flatten "linear 787 70" relu "linear 70 10"
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn

from trainer.datasets import get_dataset
from trainer.layers import LayerError, LayerSpec, parse_layer

# Limits that keep one request from taking the machine down. The zoo's largest preset, the
# ResNet, has 12 layers, 6,575,370 parameters and 4.7 MiB of activations per image (as counted by _walk).
MAX_LAYERS = 100
MAX_PARAMS = 50_000_000
MAX_ACTIVATION_MIB = 32
BYTES_PER_ELEMENT = 4  # float32

IMAGE_KINDS = frozenset({"conv", "convblock", "bn2d", "maxpool", "inception", "resblock"})

Shape = tuple[int, ...]  # one image: (channels, height, width), or (features,) once flat


@dataclass(frozen=True)
class Row:
    index: int         # 1-based, as in the messages
    layer: str         # as given
    spec: LayerSpec
    shape: Shape       # output of this layer, for one image
    params: int
    activation_bytes: int  # what this layer's forward pass writes for one image (see _walk)


@dataclass(frozen=True)
class Table:
    dataset: str
    input_shape: Shape
    rows: tuple[Row, ...]
    params: int
    activation_bytes: int


def describe_shape(shape: Shape) -> str:
    return f"{shape[0]:,} features" if len(shape) == 1 else "a " + "×".join(map(str, shape)) + " image"


def _conv(c_in: int, c_out: int, k: int) -> int:
    return c_in * c_out * k * k + c_out


def _block(c_in: int, c_out: int, k: int) -> int:
    """A convblock's parameters: the conv's, and the BatchNorm's scale and shift."""
    return _conv(c_in, c_out, k) + 2 * c_out


def _spatial(size: int, k: int, pad: int, stride: int) -> int:
    """Output size of a convolution or pooling window (torch's floor rule)."""
    return (size + 2 * pad - k) // stride + 1


def _walk(spec: LayerSpec, shape: Shape, refuse) -> tuple[Shape, int, int]:
    """(output shape, parameters, activation elements) of one layer on one input image.

    Activation elements count every tensor the layer's forward pass creates, the inner ones
    of a block included: autograd keeps (about) these for the backward pass, so they are what
    training costs in memory per image. A flatten is a view and creates nothing."""
    kind, n, opt = spec.kind, spec.numbers, spec.options
    if kind in IMAGE_KINDS and len(shape) == 1:
        refuse(f"needs an image (channels×height×width), gets {shape[0]:,} flat features: "
               f"put {kind} before `flatten`")
    if kind == "flatten":
        return (math.prod(shape),), 0, 0
    if kind in ("relu", "sigmoid", "dropout"):
        return shape, 0, math.prod(shape)
    if kind in ("linear", "bn1d"):
        if len(shape) > 1:
            hint = f"use `bn2d {shape[0]}` on images" if kind == "bn1d" else "put `flatten` before it"
            refuse(f"needs flat features, gets {describe_shape(shape)}: {hint}")
        if shape[0] != n[0]:
            refuse(f"expects {n[0]:,} features, gets {shape[0]:,}")
        out = n[-1]
        return (out,), (n[0] * out + out if kind == "linear" else 2 * out), out
    channels, h, w = shape
    if kind != "maxpool" and channels != n[0]:
        refuse(f"expects {n[0]:,} channels, gets {channels:,}")
    if kind == "bn2d":
        return shape, 2 * channels, math.prod(shape)
    if kind == "resblock":
        # conv, bn, relu, conv, bn, the sum and its relu: 7 tensors of the input's shape
        return shape, 2 * _block(channels, channels, 3), 7 * math.prod(shape)
    if kind == "inception":
        b1, b2r, b2, b3r, b3, b4 = n[1:]
        out = b1 + b2 + b3 + b4
        params = (_block(channels, b1, 1) + _block(channels, b2r, 1) + _block(b2r, b2, 3)
                  + _block(channels, b3r, 1) + _block(b3r, b3, 5) + _block(channels, b4, 1))
        # each branch's blocks (3 tensors each), the pooled input, and the concatenation
        inner = 3 * (b1 + b2r + b2 + b3r + b3 + b4) + channels + out
        return (out, h, w), params, inner * h * w
    k, pad = n[-1], opt["pad"]
    if k > min(h, w) + 2 * pad:
        padded = f" padded to {h + 2 * pad}×{w + 2 * pad}" if pad else ""
        refuse(f"has a {k}×{k} kernel, larger than its {h}×{w} input{padded}")
    stride = opt.get("stride", 1)
    out_shape = (channels if kind == "maxpool" else n[1], _spatial(h, k, pad, stride), _spatial(w, k, pad, stride))
    if kind == "maxpool":
        return out_shape, 0, math.prod(out_shape)
    if kind == "conv":
        return out_shape, _conv(channels, n[1], k), math.prod(out_shape)
    return out_shape, _block(channels, n[1], k), 3 * math.prod(out_shape)  # convblock


def check(layers: Sequence[str], dataset: str) -> Table:
    """The network's table on `dataset`'s images, or the LayerError of its first refused layer.

    Raises ValueError (not a LayerError) for an unknown dataset."""
    data = get_dataset(dataset)
    if isinstance(layers, str):
        raise LayerError(None, "layers must be a list of layer strings, not one string")
    if not layers:
        raise LayerError(None, "the network has no layers")
    if len(layers) > MAX_LAYERS:
        raise LayerError(None, f"the network has {len(layers):,} layers; zoolab builds at most {MAX_LAYERS}")
    shape: Shape = data.shape
    rows: list[Row] = []
    params = activation = 0
    for index, text in enumerate(layers, 1):
        spec = parse_layer(text, index)

        def refuse(message: str) -> NoReturn:
            raise LayerError(index, f"layer {index} {message}", text)

        shape, layer_params, elements = _walk(spec, shape, refuse)
        params += layer_params
        activation += elements * BYTES_PER_ELEMENT
        if params > MAX_PARAMS:
            refuse(f"brings the network to {params:,} parameters; the limit is {MAX_PARAMS:,}")
        if activation > MAX_ACTIVATION_MIB * 2**20:
            refuse(f"brings the activations to {activation / 2**20:,.1f} MiB per image; "
                   f"the limit is {MAX_ACTIVATION_MIB} MiB")
        rows.append(Row(index, text, spec, shape, layer_params, elements * BYTES_PER_ELEMENT))
    if shape != (data.num_classes,):
        refuse(f"is the last and outputs {describe_shape(shape)}, but {dataset} has {data.num_classes} "
               f"classes: the network must end with {data.num_classes} features")
    return Table(dataset, data.shape, tuple(rows), params, activation)


if __name__ == "__main__":
    try:
        table = check(sys.argv[2:], sys.argv[1])
    except LayerError as e:
        sys.exit(e.message)
    for row in table.rows:
        print(f"{row.index:3} {row.layer:36} {'×'.join(map(str, row.shape)):>12} {row.params:>12,}")
    print(f"{table.params:,} parameters, {table.activation_bytes / 2**20:.2f} MiB of activations per image")
