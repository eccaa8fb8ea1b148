"""Layer widths as sweep parameters (trainer/widths.py) against torch: for every preset and every
layer with a width, and random widths, the resized network is one torch builds and runs on the
dataset's images, to the number of classes, with the checker's parameter count; the layers
without a width (and the classifier) are refused.

    .venv/bin/python -m pytest tests/test_widths.py -q
"""

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import HealthCheck, given, settings

from trainer.datasets import get_dataset
from trainer.layers import LayerError, parse_layers
from trainer.nets import build_layers, count_params
from trainer.shapes import check
from trainer.widths import resize, sizeable
from trainer.zoo import PRESETS

torch.set_num_threads(1)
SIZED = [p for p in PRESETS.values() if sizeable(p.layers)]


def test_the_widths_of_a_network():
    assert sizeable(PRESETS["mnist-3fc-2bn-51k"].layers) == {2: 60, 5: 60}
    assert sizeable(PRESETS["mnist-logreg"].layers) == {}  # its one linear layer gives the classes
    assert sizeable(PRESETS["cifar-resnet-6.6m"].layers) == {1: 64, 2: 128, 5: 256, 7: 512}
    assert resize(PRESETS["mnist-3fc-2bn-51k"].layers, "mnist", {2: 128}) == [
        "flatten", "linear 784 128", "bn1d 128", "relu", "linear 128 60", "bn1d 60", "relu", "linear 60 10"]
    # a conv's channels flow through pooling and flatten into the first linear layer
    assert resize(PRESETS["cifar-2conv5-2fc-bn-21k"].layers, "cifar10", {4: 5})[3:8] == [
        "conv 6 5 5", "maxpool 2", "relu", "flatten", "linear 125 60"]
    for index in (1, 3, 8):  # flatten, bn1d, the classifier
        with pytest.raises(LayerError, match=f"layer {index} has no width to change"):
            resize(PRESETS["mnist-3fc-2bn-51k"].layers, "mnist", {index: 32})
    with pytest.raises(LayerError, match="the limit is 50,000,000"):
        resize(PRESETS["mnist-3fc-2bn-51k"].layers, "mnist", {2: 8000, 5: 8000})


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_resized_networks_are_what_torch_builds(data):
    preset = data.draw(st.sampled_from(SIZED), label="preset")
    widths_of = sizeable(preset.layers)
    chosen = data.draw(st.lists(st.sampled_from(sorted(widths_of)), min_size=1, unique=True), label="layers")
    widths = {i: data.draw(st.integers(1, 48), label=f"width of layer {i}") for i in chosen}
    layers = resize(preset.layers, preset.dataset, widths)
    specs = parse_layers(layers)
    assert [int(specs[i - 1].numbers[1]) for i in chosen] == [widths[i] for i in chosen]
    spec = get_dataset(preset.dataset)
    net = build_layers(layers).eval()
    with torch.no_grad():
        out = net(torch.zeros(2, *spec.shape))
    assert out.shape == (2, spec.num_classes)
    assert count_params(net) == check(layers, preset.dataset).params
