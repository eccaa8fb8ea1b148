"""The zoo's layer language, parsed once: a layer string becomes a typed `LayerSpec` or a
`LayerError` whose sentence a student understands. Torch-free: the server parses with it,
`trainer.nets` builds torch modules from its specs, `trainer.shapes` checks them.

One string per layer: a kind, positional numbers, optional key=value options.
    flatten | sigmoid | relu
    linear IN OUT | bn1d C | bn2d C | dropout P
    conv IN OUT K [pad=P] [stride=S]
    convblock IN OUT K [pad=P]              Conv2d -> BatchNorm2d -> ReLU
    maxpool K [stride=S] [pad=P]            stride defaults to K
    inception IN B1 B2R B2 B3R B3 B4        GoogLeNet block, out B1+B2+B3+B4 channels
    resblock C                              relu(x + BN(conv(relu(BN(conv(x))))))

    python -m trainer.layers "conv 3 8 3 pad=1"     # parse one layer, print its spec
"""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NoReturn

MAX_SIZE = 65_536        # largest number a layer may hold (widths, channels, kernels, pads, strides)
MAX_LAYER_CHARS = 100    # the longest legal layer is about 50 characters

_WHOLE = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


@dataclass(frozen=True)
class Kind:
    """One kind of layer: its positional numbers and its options with their defaults."""
    args: tuple[str, ...]                  # names of the positional numbers, in order
    options: dict[str, int | None] = field(default_factory=dict)  # None: the kernel size
    fraction: bool = False                 # its one number is a probability, not a size
    batch_norm: bool = False               # normalises over the batch (needs 2+ images to train)

    def usage(self, name: str) -> str:
        return " ".join([name, *self.args, *(f"[{k}={k[0].upper()}]" for k in self.options)])


KINDS: dict[str, Kind] = {
    "flatten": Kind(()),
    "sigmoid": Kind(()),
    "relu": Kind(()),
    "linear": Kind(("IN", "OUT")),
    "bn1d": Kind(("C",), batch_norm=True),
    "bn2d": Kind(("C",), batch_norm=True),
    "dropout": Kind(("P",), fraction=True),
    "conv": Kind(("IN", "OUT", "K"), {"pad": 0, "stride": 1}),
    "convblock": Kind(("IN", "OUT", "K"), {"pad": 0}, batch_norm=True),
    "maxpool": Kind(("K",), {"stride": None, "pad": 0}),
    "inception": Kind(("IN", "B1", "B2R", "B2", "B3R", "B3", "B4"), batch_norm=True),
    "resblock": Kind(("C",), batch_norm=True),
}


class LayerError(ValueError):
    """A refused layer (index 1-based) or network (index None). `message` is the sentence to
    show at that row; str() adds the layer's text for logs."""

    def __init__(self, index: int | None, message: str, layer: str | None = None):
        self.index, self.message, self.layer = index, message, layer
        super().__init__(message if layer is None else f"{message} [{layer!r}]")


@dataclass(frozen=True)
class LayerSpec:
    """A parsed layer: `numbers` as written, `options` with every default filled in."""
    kind: str
    numbers: tuple[int | float, ...]
    options: dict[str, int] = field(default_factory=dict, hash=False)

    def __str__(self) -> str:
        """The canonical text: single spaces, options in the grammar's order, defaults left out."""
        default = {k: self.numbers[0] if d is None else d for k, d in KINDS[self.kind].options.items()}
        words = [self.kind, *map(str, self.numbers),
                 *(f"{k}={v}" for k, v in self.options.items() if v != default[k])]
        return " ".join(words)


def parse_layer(text: str, index: int = 1) -> LayerSpec:
    """`text` as a LayerSpec, or a LayerError naming layer `index` (1-based) and what is wrong."""
    def refuse(message: str) -> NoReturn:
        raise LayerError(index, f"layer {index} {message}", text if isinstance(text, str) else None)

    if not isinstance(text, str):
        refuse(f"must be a string, gets {type(text).__name__}")
    if len(text) > MAX_LAYER_CHARS:
        refuse(f"is {len(text):,} characters long; a layer is at most {MAX_LAYER_CHARS}")
    words = text.split()
    if not words:
        refuse("is empty")
    name, rest = words[0], words[1:]
    if name not in KINDS:
        close = difflib.get_close_matches(name.lower(), KINDS, n=1)
        refuse(f"is `{name}`, not a layer zoolab knows: "
               + (f"did you mean `{close[0]}`?" if close else f"use one of {', '.join(KINDS)}"))
    kind = KINDS[name]
    usage = kind.usage(name)
    pattern, noun = (_DECIMAL, "a number") if kind.fraction else (_WHOLE, "a whole number")

    def number(text: str, what: str) -> int | float:
        if not pattern.fullmatch(text):
            refuse(f"needs {noun} for {what} ({usage}), gets `{text}`")
        return float(text) if kind.fraction else int(text)

    positional = [w for w in rest if "=" not in w]
    if len(positional) != len(kind.args):
        wanted = {0: "no numbers", 1: "1 number"}.get(len(kind.args), f"{len(kind.args)} numbers")
        refuse(f"{'takes' if not kind.args else 'needs'} {wanted} ({usage}), gets {len(positional)}")
    numbers = tuple(number(w, arg) for w, arg in zip(positional, kind.args))
    options: dict[str, int] = {}
    for word in rest:
        if "=" not in word:
            continue
        key, value = word.split("=", 1)
        if key not in kind.options:
            refuse(f"has no option `{key}` ({usage})")
        if key in options:
            refuse(f"sets {key}= twice")
        options[key] = number(value, key)

    for what, value in (*zip(kind.args, numbers), *options.items()):
        if kind.fraction:
            if not 0 <= value <= 1:
                refuse(f"needs {what} between 0 and 1 ({usage}), gets {value}")
            continue
        least = 0 if what == "pad" else 1
        if value < least:
            refuse(f"needs {what} of at least {least} ({usage}), gets {value}")
        if value > MAX_SIZE:
            refuse(f"has {what} {value:,}; zoolab builds sizes up to {MAX_SIZE:,}")
    options = {k: options.get(k, numbers[0] if d is None else d) for k, d in kind.options.items()}
    if name == "maxpool" and 2 * options["pad"] > numbers[0]:
        # torch refuses this on the first forward pass (pooling windows made of padding only)
        refuse(f"pads by {options['pad']}, more than half its kernel {numbers[0]}: "
               f"max-pooling allows pad up to {numbers[0] // 2}")
    return LayerSpec(name, numbers, options)


def parse_layers(layers: Sequence[str]) -> list[LayerSpec]:
    """Every layer parsed, or the first LayerError. Shapes are `trainer.shapes.check`'s concern."""
    if isinstance(layers, str):
        raise LayerError(None, "layers must be a list of layer strings, not one string")
    return [parse_layer(text, i) for i, text in enumerate(layers, 1)]


if __name__ == "__main__":
    spec = parse_layer(" ".join(sys.argv[1:]) or "conv 3 8 3 pad=1")
    print(repr(spec), "\ncanonical:", spec)
