"""The shape checker (trainer/shapes.py) against torch: for random networks drawn from the
layer language, its shapes and parameter counts are those of the network torch builds and
runs, and it refuses exactly the layer torch fails on — plus zoolab's own rules (the class
count, linear on an image, the limits), which torch would let pass and are tested apart.

    .venv/bin/python -m pytest tests/test_shapes.py -q
    HYPOTHESIS_PROFILE=thorough .venv/bin/python -m pytest tests/test_shapes.py -q   # 10x the examples
"""

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from torch import nn

from trainer import shapes
from trainer.datasets import get_dataset
from trainer.layers import MAX_SIZE, LayerError, LayerSpec, parse_layer, parse_layers
from trainer.nets import Inception, ResBlock, build_layer, count_params
from trainer.zoo import PRESETS

settings.register_profile("default", max_examples=100, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", parent=settings.get_profile("default"), max_examples=600)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
torch.set_num_threads(1)


# --- torch, layer by layer ----------------------------------------------------------------

def activation_elements(module: nn.Module, x: torch.Tensor) -> int:
    """What the checker's activation estimate counts, measured: the output of every leaf module
    but flatten (a view), the concatenation of an inception block, a resblock's sum and relu."""
    seen = []

    def hook(m, _inputs, out):
        if isinstance(m, (Inception, ResBlock)):
            seen.append(out[0].numel() * (2 if isinstance(m, ResBlock) else 1))
        elif not list(m.children()) and not isinstance(m, nn.Flatten):
            seen.append(out[0].numel())

    handles = [m.register_forward_hook(hook) for m in module.modules()]
    with torch.no_grad():
        module(x)
    for h in handles:
        h.remove()
    return sum(seen)


def run_torch(specs: list[LayerSpec], dataset: str):
    """Build and run each layer on 2 images (eval mode). Returns (rows, verdict): rows of
    (shape, params, activation elements) for the layers torch ran; verdict None, or
    (1-based index, why) of the first layer torch fails on ("torch") or that passes only by
    a policy exemption ("linear on an image" where torch broadcasts, "classes" at the end)."""
    data = get_dataset(dataset)
    x = torch.randn(2, *data.shape, generator=torch.Generator().manual_seed(0))
    rows = []
    for index, spec in enumerate(specs, 1):
        try:
            module = build_layer(spec).eval()
            elements = activation_elements(module, x)
            with torch.no_grad():
                out = module(x)
        except (RuntimeError, ValueError):
            return rows, (index, "torch")
        if isinstance(module, nn.Linear) and x.dim() != 2:
            return rows, (index, "linear on an image")
        x = out
        rows.append((tuple(x.shape[1:]), count_params(module), elements))
    if tuple(x.shape) != (2, data.num_classes):
        return rows, (len(specs), "classes")
    return rows, None


# --- networks drawn from the grammar --------------------------------------------------------

@st.composite
def valid_networks(draw):
    """(dataset, specs): image layers whose kernels fit, then flatten, then flat layers,
    ending in the dataset's class count. Small sizes: torch runs each in milliseconds."""
    dataset = draw(st.sampled_from(["mnist", "cifar10"]))
    c, h, _ = get_dataset(dataset).shape
    specs = []
    for _ in range(draw(st.integers(0, 5))):
        kind = draw(st.sampled_from(["conv", "convblock", "maxpool", "bn2d", "inception", "resblock",
                                     "relu", "sigmoid", "dropout"]))
        if kind in ("conv", "convblock"):
            pad = draw(st.integers(0, 2))
            k = draw(st.integers(1, min(5, h + 2 * pad)))
            stride = draw(st.integers(1, 3)) if kind == "conv" else 1
            out = draw(st.integers(1, 6))
            options = {"pad": pad, "stride": stride} if kind == "conv" else {"pad": pad}
            specs.append(LayerSpec(kind, (c, out, k), options))
            c, h = out, (h + 2 * pad - k) // stride + 1
        elif kind == "maxpool":
            pad = draw(st.integers(0, 1))  # torch allows at most half the kernel
            k = draw(st.integers(max(1, 2 * pad), min(4, h + 2 * pad)))
            stride = draw(st.integers(1, 3))
            specs.append(LayerSpec(kind, (k,), {"stride": stride, "pad": pad}))
            h = (h + 2 * pad - k) // stride + 1
        elif kind == "inception":
            b = draw(st.lists(st.integers(1, 3), min_size=6, max_size=6))
            specs.append(LayerSpec(kind, (c, *b)))
            c = b[0] + b[2] + b[4] + b[5]
        elif kind in ("bn2d", "resblock"):
            specs.append(LayerSpec(kind, (c,)))
        else:
            specs.append(draw(_pointwise()))
    specs.append(LayerSpec("flatten", ()))
    features = c * h * h
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["linear", "bn1d", "pointwise"]))
        if kind == "linear":
            out = draw(st.integers(1, 32))
            specs.append(LayerSpec(kind, (features, out)))
            features = out
        elif kind == "bn1d":
            specs.append(LayerSpec(kind, (features,)))
        else:
            specs.append(draw(_pointwise()))
    specs.append(LayerSpec("linear", (features, get_dataset(dataset).num_classes)))
    return dataset, specs


def _pointwise():
    return st.one_of(st.just(LayerSpec("relu", ())), st.just(LayerSpec("sigmoid", ())),
                     st.floats(0, 1).map(lambda p: LayerSpec("dropout", (round(p, 3),))))


@st.composite
def mutated_networks(draw):
    """A valid network with one thing changed, most often into one torch refuses."""
    dataset, specs = draw(valid_networks())
    i = draw(st.integers(0, len(specs) - 1))
    spec = specs[i]
    windows = [j for j, s in enumerate(specs) if s.kind in ("conv", "convblock", "maxpool")]
    mutation = draw(st.sampled_from(["number", "window", "window", "dropout", "delete", "move", "duplicate",
                                     "insert"]))
    if mutation == "number" and spec.numbers and spec.kind != "dropout":
        j = draw(st.integers(0, len(spec.numbers) - 1))
        value = max(1, spec.numbers[j] + draw(st.integers(-3, 40).filter(bool)))
        specs[i] = replace(spec, numbers=(*spec.numbers[:j], value, *spec.numbers[j + 1:]))
    elif mutation == "window" and windows:
        # a kernel at the edge of its padded input; a max-pool's pad may pass half its kernel
        j = draw(st.sampled_from(windows))
        torch_rows, _ = run_torch(specs[:j], dataset)
        size = torch_rows[-1][0][-1] if torch_rows else get_dataset(dataset).size
        pad = draw(st.integers(0, 3))
        k = max(1, draw(st.sampled_from([size + 2 * pad + d for d in range(-2, 3)] + [1, 2, 3])))
        specs[j] = replace(specs[j], numbers=(*specs[j].numbers[:-1], k), options={**specs[j].options, "pad": pad})
    elif mutation == "dropout":
        specs.insert(i, LayerSpec("dropout", (draw(st.sampled_from([1.5, -0.5, 1.0, 0.0, 0.5])),)))
    elif mutation == "delete" and len(specs) > 1:
        del specs[i]
    elif mutation == "move":
        specs.insert(draw(st.integers(0, len(specs) - 1)), specs.pop(i))
    elif mutation == "duplicate":
        specs.insert(i, spec)
    else:
        specs.insert(i, parse_layer(draw(st.sampled_from(
            ["flatten", "bn1d 3", "bn2d 3", "linear 3 10", "conv 3 4 3", "maxpool 2 pad=1", "resblock 1",
             "linear 784 10", "conv 1 4 30", "inception 1 1 1 1 1 1 1", "linear 28 10"]))))
    return dataset, specs


# --- the properties -------------------------------------------------------------------------

def assert_table_is_torchs(table: shapes.Table, torch_rows) -> None:
    assert len(table.rows) == len(torch_rows)
    for row, (shape, params, elements) in zip(table.rows, torch_rows):
        assert (row.shape, row.params, row.activation_bytes) == (shape, params, 4 * elements), row.layer
    assert table.params == sum(r[1] for r in torch_rows)


@given(valid_networks())
def test_valid_networks_have_torchs_shapes_and_parameters(network):
    dataset, specs = network
    torch_rows, verdict = run_torch(specs, dataset)
    assert verdict is None
    assert_table_is_torchs(shapes.check([str(s) for s in specs], dataset), torch_rows)


@given(mutated_networks())
@settings(max_examples=6 * settings().max_examples)
def test_the_checker_refuses_exactly_the_layer_torch_fails_on(network):
    dataset, specs = network
    texts = [str(s) for s in specs]
    torch_rows, verdict = run_torch(specs, dataset)
    if verdict is None:
        assert_table_is_torchs(shapes.check(texts, dataset), torch_rows)
        return
    with pytest.raises(LayerError) as refused:
        shapes.check(texts, dataset)
    assert refused.value.index == verdict[0], (texts, verdict, refused.value.message)
    assert refused.value.message.startswith(f"layer {verdict[0]} ")


@given(mutated_networks())
def test_canonical_text_parses_back_to_the_same_spec(network):
    _, specs = network
    for spec in specs:
        try:
            assert parse_layer(str(spec)) == spec
        except LayerError:  # a mutation the parser itself refuses (dropout 1.5, maxpool 3 pad=2)
            assert spec.kind in ("dropout", "maxpool")


@pytest.mark.parametrize("model_id", list(PRESETS))
def test_every_preset_passes_with_its_exact_parameter_count(model_id):
    preset = PRESETS[model_id]
    table = shapes.check(preset.layers, preset.dataset)
    assert table.params == preset.params
    assert table.rows[-1].shape == (10,)
    torch_rows, verdict = run_torch(parse_layers(preset.layers), preset.dataset)
    assert verdict is None
    assert_table_is_torchs(table, torch_rows)


# --- zoolab's own rules, which torch would let pass --------------------------------------------

def refusal(layers, dataset="mnist") -> tuple[int | None, str]:
    with pytest.raises(LayerError) as e:
        shapes.check(layers, dataset)
    return e.value.index, e.value.message


def test_the_notes_typo():
    assert refusal(["flatten", "linear 787 70", "relu", "linear 70 10"]) == (
        2, "layer 2 expects 787 features, gets 784")


def test_the_last_layer_must_output_the_class_count():
    layers = ["flatten", "linear 784 60"]
    assert run_torch(parse_layers(layers), "mnist")[1] == (2, "classes")  # torch runs it
    assert refusal(layers) == (
        2, "layer 2 is the last and outputs 60 features, but mnist has 10 classes: "
           "the network must end with 10 features")
    assert refusal(["conv 3 8 3"], "cifar10") == (
        1, "layer 1 is the last and outputs a 8×30×30 image, but cifar10 has 10 classes: "
           "the network must end with 10 features")


def test_linear_on_an_image_needs_flatten_even_where_torch_would_broadcast():
    layers = ["linear 28 10", "flatten", "linear 280 10"]
    assert run_torch(parse_layers(layers), "mnist")[1] == (1, "linear on an image")
    assert refusal(layers) == (1, "layer 1 needs flat features, gets a 1×28×28 image: put `flatten` before it")


def test_layer_count_limit():
    assert refusal(["flatten", *["relu"] * shapes.MAX_LAYERS, "linear 784 10"]) == (
        None, "the network has 102 layers; zoolab builds at most 100")
    assert shapes.check(["flatten", *["relu"] * (shapes.MAX_LAYERS - 2), "linear 784 10"], "mnist")


def test_parameter_limit():
    assert refusal(["flatten", "linear 784 65536", "relu", "linear 65536 10"]) == (
        2, "layer 2 brings the network to 51,445,760 parameters; the limit is 50,000,000")
    assert shapes.check(["flatten", "linear 784 60000", "relu", "linear 60000 10"], "mnist").params == 47_700_010


def test_activation_limit():
    # 8 channels of (28 + 2*500)^2 float32 values: 32.25 MiB for one image
    assert refusal(["conv 1 8 1 pad=500", "flatten", "linear 8454272 10"]) == (
        1, "layer 1 brings the activations to 32.3 MiB per image; the limit is 32 MiB")
    table = shapes.check(["conv 1 8 1 pad=480", "maxpool 968", "flatten", "linear 8 10"], "mnist")
    assert table.activation_bytes <= shapes.MAX_ACTIVATION_MIB * 2**20


def test_sizes_must_be_at_least_one_and_at_most_the_maximum():
    assert refusal(["flatten", "linear 784 0", "linear 0 10"]) == (
        2, "layer 2 needs OUT of at least 1 (linear IN OUT), gets 0")
    assert refusal(["flatten", f"linear 784 {MAX_SIZE + 1}"]) == (
        2, "layer 2 has OUT 65,537; zoolab builds sizes up to 65,536")


def test_empty_and_string_networks():
    assert refusal([]) == (None, "the network has no layers")
    assert refusal("flatten") == (None, "layers must be a list of layer strings, not one string")


def test_the_error_names_the_layer_for_logs():
    with pytest.raises(ValueError) as e:
        shapes.check(["flatten", "linear 787 70"], "mnist")
    assert str(e.value) == "layer 2 expects 787 features, gets 784 ['linear 787 70']"


def test_canonical_form():
    assert str(parse_layer("  conv 3 8 3   stride=1 pad=1 ")) == "conv 3 8 3 pad=1"
    assert str(parse_layer("maxpool 2 stride=2 pad=0")) == "maxpool 2"
    assert str(parse_layer("maxpool 3 pad=1 stride=1")) == "maxpool 3 stride=1 pad=1"
    assert parse_layer("maxpool 2").options == {"stride": 2, "pad": 0}


def test_checker_and_parser_do_not_import_torch():
    code = "import sys, trainer.shapes, trainer.layers; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1], check=True)
