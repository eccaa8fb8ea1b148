"""Networks of the zoo: layers parsed by `trainer.layers` turned into torch modules.

`build_model(id)` is the single entry point for a preset; `build_layers(layers)` builds
any list of layer strings, so a user's own network is the same kind of data.

    python -m trainer.nets cifar-resnet-6.6m     # print the network and its parameter count
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from trainer.layers import LayerSpec, parse_layers
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


def build_layer(spec: LayerSpec) -> nn.Module:
    """The torch module of one parsed layer. It checks nothing itself (the parser and
    `trainer.shapes` do): torch's own errors are what tests/test_shapes.py compares against."""
    n, opt = spec.numbers, spec.options
    match spec.kind:
        case "flatten":
            return nn.Flatten()
        case "sigmoid":
            return nn.Sigmoid()
        case "relu":
            return nn.ReLU()
        case "linear":
            return nn.Linear(*n)
        case "bn1d":
            return nn.BatchNorm1d(*n)
        case "bn2d":
            return nn.BatchNorm2d(*n)
        case "dropout":
            return nn.Dropout(*n)
        case "conv":
            return nn.Conv2d(*n, stride=opt["stride"], padding=opt["pad"])
        case "convblock":
            return ConvBlock(*n, padding=opt["pad"])
        case "maxpool":
            return nn.MaxPool2d(*n, stride=opt["stride"], padding=opt["pad"])
        case "inception":
            return Inception(*n)
        case "resblock":
            return ResBlock(*n)
    raise ValueError(f"no torch module for layer kind {spec.kind!r}")


def build_layers(layers: Sequence[str]) -> nn.Sequential:
    return nn.Sequential(*map(build_layer, parse_layers(layers)))


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
