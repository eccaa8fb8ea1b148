"""Every preset of the zoo builds, counts, runs forward and backward.

    .venv/bin/python -m pytest tests/test_zoo.py -q
"""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from trainer.datasets import get_dataset
from trainer.nets import build_layers, build_model, count_params, is_convnet
from trainer.zoo import DEFAULT_KEYS, PRESETS, UnknownModel, describe, get_preset, presets_for

# zoo.md, "params (as written)": a literal copy so the registry cannot drift from the spec.
SPEC_PARAMS = {
    "mnist-logreg": 7_850,
    "mnist-2fc-sigmoid-8k": 7_960,
    "mnist-2fc-sigmoid-55k": 55_660,
    "mnist-2fc-relu-55k": 55_660,
    "mnist-2fc-relu-bn-55k": 55_800,
    "mnist-3fc-51k": 51_370,
    "mnist-3fc-bn1-51k": 51_490,
    "mnist-3fc-bn2-51k": 51_490,
    "mnist-3fc-2bn-51k": 51_610,
    "mnist-3fc-2bn-explr": 51_610,
    "mnist-3fc-2bn-polylr": 51_610,
    "mnist-best-augment": 51_610,
    "cifar-conv5-fc-8k": 7_926,
    "cifar-conv5-pool-fc-2k": 2_046,
    "cifar-conv5-2fc-bn-47k": 47_906,
    "cifar-2conv5-2fc-bn-21k": 21_058,
    "cifar-2conv5-2fc-bn-36k": 36_570,
    "cifar-3conv-2fc-bn-41k": 41_860,
    "cifar-vgg-179k": 169_220,
    "cifar-inception-2step": 514_635,
    "cifar-inception-1step": 514_635,
    "cifar-resnet-6.6m": 6_575_370,
}

torch.set_num_threads(1)


def test_registry_is_exactly_the_spec_in_chronology_order():
    assert list(PRESETS) == list(SPEC_PARAMS)
    assert len(presets_for("mnist")) == 12
    assert len(presets_for("cifar10")) == 10
    for dataset in ("mnist", "cifar10"):
        assert [p.order for p in presets_for(dataset)] == list(range(1, len(presets_for(dataset)) + 1))


@pytest.mark.parametrize("model_id", list(PRESETS))
def test_preset_fields(model_id):
    p = get_preset(model_id)
    assert p.params == SPEC_PARAMS[model_id]
    assert set(p.defaults) == set(DEFAULT_KEYS)
    assert p.notes_acc is None or 0 < p.notes_acc < 1
    json.dumps(describe(p))


@pytest.mark.parametrize("model_id", list(PRESETS))
def test_model_forward_backward(model_id):
    torch.manual_seed(0)
    p = get_preset(model_id)
    model = build_model(model_id)
    assert count_params(model) == p.params == SPEC_PARAMS[model_id]
    assert is_convnet(model) == (p.dataset == "cifar10")

    model.train()
    x = torch.randn(2, *get_dataset(p.dataset).shape)
    y = torch.tensor([0, 1])
    out = model(x)
    assert out.shape == (2, 10)
    loss = F.cross_entropy(out, y)
    assert math.isfinite(loss.item())
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name


def test_special_presets():
    two = get_preset("cifar-inception-2step")
    assert two.notes_acc == 0.8378 and "81.44" in two.description
    assert two.notes_seconds == 764 + 770
    assert two.defaults["augment"] == "autoaugment" and two.defaults["augment_from_epoch"] == 6
    assert two.defaults["epochs"] == 10 and two.defaults["normalize"] == "inception"
    assert get_preset("cifar-3conv-2fc-bn-41k").notes_acc == 0.70
    assert get_preset("mnist-3fc-2bn-explr").defaults["scheduler"] == "exponential"
    assert get_preset("mnist-3fc-2bn-polylr").defaults["scheduler"] == "polynomial"
    assert get_preset("mnist-best-augment").defaults["augment"] == "mnist-notes"


def test_unknown_model_lists_valid_ids():
    with pytest.raises(UnknownModel) as e:
        get_preset("nope")
    assert isinstance(e.value, ValueError)
    assert "'nope'" in str(e.value) and "mnist-logreg" in str(e.value) and "cifar-resnet-6.6m" in str(e.value)
    with pytest.raises(UnknownModel):
        build_model("nope")


@pytest.mark.parametrize("spec", ["linear 3", "frobnicate 3", "linear 3 x", "conv 3 4 5 pad=-1",
                                  "conv 3 4 5 dilation=2", "dropout 1.5", "linear 3 4 5", ""])
def test_bad_layer_strings_name_the_layer(spec):
    with pytest.raises(ValueError) as e:
        build_layers(["flatten", spec])
    if spec:
        assert repr(spec) in str(e.value)


def test_layer_language_options():
    net = build_layers(["conv 3 8 3 pad=1 stride=2", "maxpool 3 stride=1 pad=1", "bn2d 8", "flatten"])
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 8 * 16 * 16)


def test_zoo_does_not_import_torch():
    root = Path(__file__).resolve().parents[1]
    subprocess.run(
        [sys.executable, "-c", "import sys, trainer.zoo; assert 'torch' not in sys.modules"],
        cwd=root, check=True,
    )
