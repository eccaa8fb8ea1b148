"""Networks of the zoo: the layer language of `trainer.zoo` turned into torch modules.

`build_model(id)` is the single entry point for a preset; `build_layers(specs)` builds
any list of layer strings, so a user's own network is the same kind of data.

    python -m trainer.nets cifar-resnet-6.6m     # print the network and its parameter count
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from trainer.zoo import get_preset


class ConvBlock(nn.Sequential):
    """Conv2d -> BatchNorm2d -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int = 0):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
        )


class Inception(nn.Module):
    """GoogLeNet block, every convolution a ConvBlock; out channels b1 + b2 + b3 + b4."""

    def __init__(self, in_channels: int, b1: int, b2_reduce: int, b2: int,
                 b3_reduce: int, b3: int, b4: int):
        super().__init__()
        self.branch1 = ConvBlock(in_channels, b1, 1)
        self.branch2 = nn.Sequential(ConvBlock(in_channels, b2_reduce, 1),
                                     ConvBlock(b2_reduce, b2, 3, padding=1))
        self.branch3 = nn.Sequential(ConvBlock(in_channels, b3_reduce, 1),
                                     ConvBlock(b3_reduce, b3, 5, padding=2))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1),
                                     ConvBlock(in_channels, b4, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class ResBlock(nn.Module):
    """relu(x + BN(conv(relu(BN(conv(x)))))), both convs 3x3 keeping the channel count."""

    def __init__(self, channels: int):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.layers(x) + x)


def _dropout(p: float) -> nn.Module:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability must be in [0, 1], got {p}")
    return nn.Dropout(p)


# name -> (positional argument names, keyword names, number type, constructor)
_LAYERS: dict[str, tuple[tuple[str, ...], tuple[str, ...], type, Callable[..., nn.Module]]] = {
    "flatten": ((), (), int, nn.Flatten),
    "sigmoid": ((), (), int, nn.Sigmoid),
    "relu": ((), (), int, nn.ReLU),
    "linear": (("in", "out"), (), int, nn.Linear),
    "bn1d": (("channels",), (), int, nn.BatchNorm1d),
    "bn2d": (("channels",), (), int, nn.BatchNorm2d),
    "dropout": (("p",), (), float, _dropout),
    "conv": (("in", "out", "kernel"), ("pad", "stride"), int,
             lambda i, o, k, pad=0, stride=1: nn.Conv2d(i, o, k, stride=stride, padding=pad)),
    "convblock": (("in", "out", "kernel"), ("pad",), int,
                  lambda i, o, k, pad=0: ConvBlock(i, o, k, padding=pad)),
    "maxpool": (("kernel",), ("stride", "pad"), int,
                lambda k, stride=None, pad=0: nn.MaxPool2d(k, stride=stride, padding=pad)),
    "inception": (("in", "b1", "b2_reduce", "b2", "b3_reduce", "b3", "b4"), (), int, Inception),
    "resblock": (("channels",), (), int, ResBlock),
}


def parse_layer(spec: str) -> nn.Module:
    words = spec.split()
    if not words:
        raise ValueError("empty layer string")
    name, args = words[0], words[1:]
    if name not in _LAYERS:
        raise ValueError(f"layer {spec!r}: unknown layer {name!r}; known: {', '.join(_LAYERS)}")
    positional, keywords, number, make = _LAYERS[name]
    usage = " ".join([name, *(a.upper() for a in positional), *(f"[{k}=N]" for k in keywords)])

    def to_number(text: str) -> int | float:
        try:
            value = number(text)
        except ValueError:
            raise ValueError(f"layer {spec!r}: {text!r} is not a valid {number.__name__}") from None
        return value

    pos = [a for a in args if "=" not in a]
    kw = [a.split("=", 1) for a in args if "=" in a]
    if len(pos) != len(positional):
        raise ValueError(f"layer {spec!r}: expected {len(positional)} numbers, got {len(pos)}; "
                         f"usage: {usage}")
    kwargs: dict[str, int | float] = {}
    for key, text in kw:
        if key not in keywords or key in kwargs:
            raise ValueError(f"layer {spec!r}: unexpected option {key!r}; usage: {usage}")
        kwargs[key] = to_number(text)
    values = [to_number(a) for a in pos]
    if number is int and any(v <= 0 for v in values):
        raise ValueError(f"layer {spec!r}: sizes must be positive; usage: {usage}")
    if kwargs.get("pad", 0) < 0 or kwargs.get("stride", 1) <= 0:
        raise ValueError(f"layer {spec!r}: pad must be >= 0 and stride > 0")
    try:
        return make(*values, **kwargs)
    except (ValueError, RuntimeError) as e:
        raise ValueError(f"layer {spec!r}: {e}") from e


def build_layers(layers: Sequence[str]) -> nn.Sequential:
    if isinstance(layers, str):
        raise ValueError("layers must be a list of layer strings, not one string")
    return nn.Sequential(*(parse_layer(spec) for spec in layers))


def build_model(model_id: str) -> nn.Module:
    return build_layers(get_preset(model_id).layers)


MODEL_FORMAT = "zoolab-model/1"


def model_file(config: dict, layers: Sequence[str], weights: dict) -> dict:
    """What model.pt holds: the weights (a state dict) with the layers and run config that made
    them, so the file alone rebuilds the network (`load_model`), without zoolab's database."""
    return {"format": MODEL_FORMAT, "layers": list(layers), "config": dict(config),
            "state_dict": {k: v.detach().cpu() for k, v in weights.items()}}


def load_model(source) -> nn.Module:
    """The network of a model.pt (a path or a file object), weights loaded, in eval mode."""
    saved = torch.load(source, map_location="cpu", weights_only=True)
    if not isinstance(saved, dict) or saved.get("format") != MODEL_FORMAT:
        raise ValueError(f"not a zoolab model file (expected format {MODEL_FORMAT!r})")
    model = build_layers(saved["layers"])
    model.load_state_dict(saved["state_dict"])
    return model.eval()


def count_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def is_convnet(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


if __name__ == "__main__":
    model_id = sys.argv[1] if len(sys.argv) > 1 else "mnist-3fc-2bn-51k"
    net = build_model(model_id)
    print(net)
    print(f"{model_id}: {count_params(net):,} parameters")
