"""A sweep's search space: which keys of a run's config vary and how, checked against the base
config the trials start from, and the config of one point of it.

    {"lr":         {"low": 0.0001, "high": 0.1, "log": true},   a range (an int key gives ints)
     "batch_size": {"choices": [64, 128, 256]},                 a list of values
     "layers.2":   {"low": 16, "high": 256, "log": true}}       layer 2's width (trainer/widths.py)

A key is a run config key (those the runs table filters on, app/filters.py) or `layers.K`, the
width of layer K (1-based, as the shape checker counts): the out features of a linear layer or
the out channels of a conv; the layers after it follow, so every point is a whole network.
A grid sweep takes every combination (a range then needs `points`: that many values evenly
spaced from low to high, on a log scale with `log`); random and tpe draw from whole ranges.

Refusals name the key and say why (`SpaceError`), and nothing outside a config's limits or
the base network's sizeable layers gets through: every value a grid or a draw can take is
checked on its own against the base (`check`); each point is checked whole again before it
is queued (`config_of`)."""

import itertools
import math
import random
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.filters import CONFIG_KEYS
from trainer.config import ConfigError, RunConfig, network
from trainer.layers import MAX_SIZE, LayerError, parse_layers
from trainer.widths import resize, sizeable

MAX_RUNS = 100        # runs one sweep may queue: its budget, or its grid's size
MAX_KEYS = 10
MAX_CHOICES = 50
SAMPLERS = ("grid", "random", "tpe")
Value = int | float | str | None
EXAMPLE = '{"lr": {"low": 0.0001, "high": 0.1, "log": true}}'


class Param(BaseModel):
    """How one key varies: a range (low, high, log; points for a grid) or a list of choices."""
    model_config = ConfigDict(extra="forbid", strict=True)

    low: Annotated[float | None, Field(allow_inf_nan=False)] = None
    high: Annotated[float | None, Field(allow_inf_nan=False)] = None
    log: bool = False
    points: Annotated[int | None, Field(ge=2, le=MAX_RUNS, description="grid sweeps: values in the range")] = None
    choices: Annotated[list[int | Annotated[float, Field(allow_inf_nan=False)] | Annotated[str, Field(max_length=40)]
                            | None] | None, Field(min_length=1, max_length=MAX_CHOICES)] = None


Space = Annotated[dict[Annotated[str, Field(max_length=40)], Param], Field(
    max_length=MAX_KEYS, description=f"The keys to search and how, e.g. {EXAMPLE}; widths as layers.K")]


class SpaceError(ValueError):
    """A refused space: `loc` is where, within the request's space (() for the whole)."""

    def __init__(self, loc: tuple, message: str):
        self.loc, self.message = loc, message
        super().__init__(message)


@dataclass(frozen=True)
class Dimension:
    """One key of a checked space."""
    name: str
    kind: Literal["float", "int", "choice"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    points: int | None = None
    choices: tuple[Value, ...] = ()

    def values(self) -> list[Value]:
        """The grid's values: the choices, or `points` values evenly spaced from low to high."""
        if self.kind == "choice":
            return list(self.choices)
        ends = (math.log(self.low), math.log(self.high)) if self.log else (self.low, self.high)
        steps = [ends[0] + (ends[1] - ends[0]) * i / (self.points - 1) for i in range(self.points)]
        values = [math.exp(s) if self.log else s for s in steps]
        cast = round if self.kind == "int" else _short
        return list(dict.fromkeys(cast(v) for v in values))  # rounding may merge neighbours

    def draw(self, rng: random.Random) -> Value:
        if self.kind == "choice":
            return rng.choice(self.choices)
        if self.log:
            value = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        else:
            value = rng.uniform(self.low, self.high)
        return min(max(round(value), int(self.low)), int(self.high)) if self.kind == "int" else value

    def extremes(self) -> list[Value]:
        """Every value whose config is checked on its own before the sweep is accepted."""
        return list(self.choices) if self.kind == "choice" else [self.low, self.high]

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "low": self.low, "high": self.high, "log": self.log,
                "points": self.points, "choices": list(self.choices) or None}


def _short(x: float) -> float:
    """A grid value as a person would write it: 0.001, not 0.0010000000000000002."""
    return float(f"{x:.6g}")


def _fmt(x: float | None) -> str:
    return "∞" if x is None else f"{x:g}"


def limits(key: str) -> tuple[float | None, bool, float | None, bool]:
    """(low, low included, high, high included) of a numeric config key, from its declaration."""
    low = high = None
    low_in = high_in = True
    for m in RunConfig.model_fields[key].metadata:
        if isinstance(m, Ge):
            low = m.ge
        elif isinstance(m, Gt):
            low, low_in = m.gt, False
        elif isinstance(m, Le):
            high = m.le
        elif isinstance(m, Lt):
            high, high_in = m.lt, False
    return low, low_in, high, high_in


def kind_of(key: str) -> tuple[str, tuple, bool]:
    """("float" | "int" | "choice", the choices of a Literal, whether None is a value)."""
    annotation = RunConfig.model_fields[key].annotation
    args = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    optional = type(None) in args
    for arg in args:
        if typing.get_origin(arg) is Literal:
            return "choice", typing.get_args(arg), optional
    return ("int" if int in args else "float"), (), optional


def _within(name: str, key: str, value: float, what: str) -> None:
    low, low_in, high, high_in = limits(key)
    below = low is not None and (value < low or (value == low and not low_in))
    above = high is not None and (value > high or (value == high and not high_in))
    if below or above:
        span = f"{'[' if low_in else '('}{_fmt(low)}, {_fmt(high)}{']' if high_in else ')'}"
        raise SpaceError((name,), f"{name}: {what} {value:g} is outside {key}'s limits {span}")


def _check_layer(name: str, base: RunConfig) -> None:
    """`layers.K` must name a layer of the base network that has a width to search."""
    suffix = name[len("layers."):]
    specs = parse_layers(base.layers)
    widths = sizeable(base.layers)
    if not suffix.isdigit():
        raise SpaceError((name,), f"{name}: name a layer by its number, layers.1 to layers.{len(specs)}")
    index = int(suffix)
    if not 1 <= index <= len(specs):
        raise SpaceError((name,), f"{name}: the network has {len(specs)} layers (layers.1 to layers.{len(specs)})")
    if index not in widths:
        layer = base.layers[index - 1]
        if specs[index - 1].kind in ("linear", "conv", "convblock"):
            raise SpaceError((name,), f"{name}: layer {index} ({layer}) gives the classes: its width stays "
                                      f"{specs[index - 1].numbers[1]}")
        listed = ", ".join(f"layers.{i} ({base.layers[i - 1]})" for i in widths) or "none in this network"
        raise SpaceError((name,), f"{name}: layer {index} ({layer}) has no width to search; widths: {listed}")


def _dimension(name: str, param: Param, base: RunConfig, sampler: str) -> Dimension:
    if name.startswith("layers."):
        _check_layer(name, base)
        kind, literal, optional, limits = "int", (), False, (1, MAX_SIZE)
    elif name in CONFIG_KEYS:
        kind, literal, optional = kind_of(name)
        limits = None
    else:
        widths = ", ".join(f"layers.{i}" for i in sizeable(base.layers)) or "none in this network"
        raise SpaceError((name,), f"unknown parameter {name[:40]!r}; a sweep searches the run config's keys "
                                  f"({', '.join(CONFIG_KEYS)}) and layer widths (layers.K; {widths})")
    is_range = param.low is not None or param.high is not None
    if is_range and param.choices is not None:
        raise SpaceError((name,), f"{name}: give either low and high (a range) or choices, not both")
    if param.choices is not None:
        if param.log or param.points is not None:
            raise SpaceError((name,), f"{name}: log and points are for ranges, not choices")
        for value in param.choices:
            if value is None:
                if not optional:
                    raise SpaceError((name,), f"{name}: none is not a value of {name}")
            elif kind == "choice":
                if value not in literal:
                    raise SpaceError((name,), f"{name}: {value!r} is not one of {', '.join(literal)}")
            elif isinstance(value, str) or (kind == "int" and not float(value).is_integer()):
                noun = "whole numbers" if kind == "int" else "numbers"
                raise SpaceError((name,), f"{name}: choices must be {noun}, gets {value!r}")
            elif limits:
                if not limits[0] <= value <= limits[1]:
                    raise SpaceError((name,), f"{name}: width {value:g} is outside 1..{MAX_SIZE:,}")
            else:
                _within(name, name, value, "choice")
        if len(set(map(repr, param.choices))) != len(param.choices):
            raise SpaceError((name,), f"{name}: choices repeat a value")
        choices = tuple(int(v) if kind == "int" and v is not None else v for v in param.choices)
        return Dimension(name, "choice", choices=choices)
    if kind == "choice":
        raise SpaceError((name,), f"{name} takes one of {', '.join(literal)}: give choices, not a range")
    if param.low is None or param.high is None:
        raise SpaceError((name,), f"{name}: give low and high (a range) or choices")
    if not param.low < param.high:
        raise SpaceError((name,), f"{name}: low must be below high (gets {param.low:g} and {param.high:g})")
    for what, value in (("low", param.low), ("high", param.high)):
        if kind == "int" and not float(value).is_integer():
            raise SpaceError((name,), f"{name}: {what} must be a whole number, gets {value:g}")
        if limits and not limits[0] <= value <= limits[1]:
            raise SpaceError((name,), f"{name}: {what} {value:g} is outside the widths zoolab builds, "
                                      f"1..{MAX_SIZE:,}")
        if not limits:
            _within(name, name, value, what)
    if param.log and param.low <= 0:
        raise SpaceError((name,), f"{name}: a log range needs low above 0 (gets {param.low:g})")
    if sampler == "grid" and param.points is None:
        raise SpaceError((name,), f"{name}: a range in a grid sweep needs points (how many values from low "
                                  "to high)")
    if sampler != "grid" and param.points is not None:
        raise SpaceError((name,), f"{name}: points is for grid sweeps; random and tpe draw from the whole range")
    low, high = (int(param.low), int(param.high)) if kind == "int" else (param.low, param.high)
    return Dimension(name, kind, low, high, param.log, param.points)


def config_of(base: RunConfig, point: dict[str, Value]) -> RunConfig:
    """The run config of one point: the base with the point's keys changed (widths resized);
    ConfigError with the reason if the result is refused."""
    changes = {k: v for k, v in point.items() if not k.startswith("layers.")}
    widths = {int(k[len("layers."):]): int(v) for k, v in point.items() if k.startswith("layers.")}
    try:
        if widths:
            changes["layers"] = resize(base.layers, base.dataset, widths)
        config = RunConfig(**{**base.model_dump(), **changes})
    except LayerError as e:
        raise ConfigError(("layers",), e.message) from None
    except ValidationError as e:
        error = e.errors()[0]
        message = error["msg"].removeprefix("Value error, ")
        where = ".".join(map(str, error["loc"]))
        raise ConfigError(tuple(error["loc"]), f"{where}: {message}" if where else message) from None
    network(config)
    return config


def check(space: dict[str, Param], base: RunConfig, sampler: str) -> list[Dimension]:
    """The space's dimensions, each checked, and every value that may be taken checked alone
    against the base — or the SpaceError of the first problem."""
    if not space:
        raise SpaceError((), f"the space is empty: give at least one parameter to search, e.g. {EXAMPLE}")
    dims = [_dimension(name, param, base, sampler) for name, param in space.items()]
    for dim in dims:
        for value in dim.extremes():
            try:
                config_of(base, {dim.name: value})
            except ConfigError as e:
                raise SpaceError((dim.name,), f"{dim.name} {_fmt(value) if isinstance(value, float) else value}: "
                                              f"{e.message}") from None
    widths = [d for d in dims if d.name.startswith("layers.")]
    if len(widths) > 1:  # the widest network of the space, which no single value shows
        try:
            config_of(base, {d.name: max(d.extremes()) for d in widths})
        except ConfigError as e:
            names = " and ".join(d.name for d in widths)
            raise SpaceError((), f"{names} at their highest: {e.message}") from None
    return dims


def grid_size(dims: list[Dimension]) -> int:
    return math.prod(len(d.values()) for d in dims)


def grid(dims: list[Dimension]) -> list[dict[str, Value]]:
    """Every combination, the first key changing slowest (the order the runs are queued in)."""
    names = [d.name for d in dims]
    return [dict(zip(names, values)) for values in itertools.product(*(d.values() for d in dims))]


def draws(dims: list[Dimension], n: int, seed: int) -> list[dict[str, Value]]:
    rng = random.Random(seed)
    return [{d.name: d.draw(rng) for d in dims} for _ in range(n)]
