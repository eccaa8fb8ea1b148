"""The training loop on the real datasets: presets reach the notes' accuracy, runs are
deterministic and resume exactly, divergence is reported, the big presets learn, the
inception two-step schedule switches augmentation on when it should, Fashion-MNIST loads.

    .venv/bin/python -m pytest tests/test_train.py -q

Data: the data rule's folder (conftest.py; never downloaded).
About 50 s on a 2-core CPU (one torch thread; slower while other jobs share the cores).
"""

import io
import math
import os
from pathlib import Path

import pytest
import torch

import trainer.loader as loader_module
from trainer.config import resolve
from trainer.data import load
from trainer.datafiles import DEBIAN_FASHION_DIR, find
from trainer.datasets import DATASETS
from trainer.train import Diverged, train
from trainer.zoo import get_preset

DATA_DIR = Path(os.environ["ZOOLAB_DATA_DIR"])  # set by conftest.py, by the data rule
CPU = torch.device("cpu")
# Metrics that are pure functions of seed + config (not timings or memory).
EXACT_KEYS = ("train_loss", "train_acc", "test_loss", "test_acc", "lr")
BIG_PRESETS = ("cifar-vgg-179k", "cifar-inception-2step", "cifar-inception-1step", "cifar-resnet-6.6m")

# One thread: 2 OpenMP threads on a CPU shared with other processes collapse 10-50x
# (see trainer.train.default_threads); one thread is also what CI gets from test_zoo.
torch.set_num_threads(1)


class Recorder:
    def __init__(self):
        self.epochs: dict[int, dict[str, float]] = {}

    def epoch(self, epoch, metrics, state):
        self.epochs[epoch] = dict(metrics)

    def progress(self, *args, **kwargs):
        pass

    def exact(self) -> dict[int, dict[str, float]]:
        return {e: {k: m[k] for k in EXACT_KEYS} for e, m in self.epochs.items()}

    def best_acc(self) -> float:
        return max(m["test_acc"] for m in self.epochs.values())


def run(overrides: dict, recorder: Recorder | None = None, resume: dict | None = None) -> Recorder:
    config = resolve(overrides)
    recorder = recorder or Recorder()
    train(config, load(config.dataset, DATA_DIR, CPU), recorder, CPU, resume=resume,
          progress_seconds=float("inf"))
    return recorder


# --- (a), (b): the notes' accuracy with the presets' own defaults, full MNIST test set ---

@pytest.mark.parametrize("model", ["mnist-logreg", "mnist-3fc-2bn-51k"])
def test_preset_defaults_reach_the_notes_accuracy(model):
    preset = get_preset(model)
    rec = run({"model": model})
    assert len(rec.epochs) == preset.defaults["epochs"]
    accs = [round(m["test_acc"], 4) for m in rec.epochs.values()]
    # The notes recorded the best test accuracy over epochs.
    assert rec.best_acc() >= preset.notes_acc, f"{model}: test accuracy per epoch {accs} < notes {preset.notes_acc}"


# --- (c) determinism ---

@pytest.mark.parametrize("overrides", [
    # batch-norm, ExponentialLR, mnist-notes augmentation
    {"model": "mnist-best-augment", "epochs": 2, "train_subset": 2000},
    # conv + BatchNorm2d + dropout (global RNG) + flip-crop augmentation (generator)
    {"model": "cifar-vgg-179k", "epochs": 2, "train_subset": 256, "test_subset": 256,
     "augment": "flip-crop"},
], ids=lambda o: o["model"])
def test_same_seed_and_config_give_identical_metrics(overrides):
    first, second = run(overrides).exact(), run(overrides).exact()
    assert first == second
    other_seed = run({**overrides, "seed": 1}).exact()
    assert other_seed != first  # the seed is actually used


# --- (d) divergence ---

def test_diverging_config_raises_diverged_with_the_epoch():
    # SGD at lr 100 on a ReLU MLP without batch-norm: weights overflow within the epoch.
    with pytest.raises(Diverged, match=r"^loss became NaN at epoch 1$"):
        run({"model": "mnist-3fc-51k", "epochs": 3, "optimizer": "sgd", "lr": 100.0,
             "train_subset": 5000})


@pytest.mark.parametrize("progress_seconds", [0.0, float("inf")], ids=["report-every-batch", "report-never"])
def test_a_diverged_run_keeps_its_trace_up_to_the_nan(progress_seconds):
    # Whether the NaN shows at a progress report or at the epoch's end, the batches before it
    # are reported: the dashboard draws the loss climbing until it broke.
    points = []

    class Progress(Recorder):
        def progress(self, epoch, fraction, train_loss, train_acc, eta_seconds):
            points.append((epoch, train_loss, train_acc))

    config = resolve({"model": "mnist-3fc-51k", "epochs": 2, "optimizer": "sgd", "lr": 100.0, "train_subset": 5000})
    with pytest.raises(Diverged, match=r"^loss became NaN at epoch 1$"):
        train(config, load(config.dataset, DATA_DIR, CPU), Progress(), CPU, progress_seconds=progress_seconds)
    assert points, "no progress before the NaN"
    epochs = [e for e, _, _ in points]
    assert epochs == sorted(epochs) and 0 < epochs[0] and epochs[-1] < 1
    assert all(math.isfinite(loss) and 0 <= acc <= 1 for _, loss, acc in points), points
    assert points[0][1] < 10 < points[-1][1]  # from a first batch's ~2.3 to the blow-up


def test_grad_clip_bounds_every_update():
    """Each gradient element is clipped to ±grad_clip, so plain SGD moves no weight by more
    than lr * grad_clip a step; without clipping the same run moves far more."""
    from trainer.nets import build_model

    class KeepWeights(Recorder):
        def epoch(self, epoch, metrics, state):
            super().epoch(epoch, metrics, state)
            self.weights = [p.detach().clone() for p in state.model.parameters()]

    torch.manual_seed(0)  # train() seeds the same way before building the network
    initial = [p.detach().clone() for p in build_model("mnist-logreg").parameters()]
    base = {"model": "mnist-logreg", "epochs": 1, "optimizer": "sgd", "lr": 0.5, "momentum": 0.0,
            "weight_decay": 0.0, "scheduler": "none", "batch_size": 64, "train_subset": 256, "seed": 0}
    steps, clip = 256 // 64, 1e-4

    def largest_move(recorder):
        return max((w - w0).abs().max().item() for w, w0 in zip(recorder.weights, initial))

    clipped, free = largest_move(run({**base, "grad_clip": clip}, KeepWeights())), largest_move(run(base, KeepWeights()))
    assert 0 < clipped <= steps * base["lr"] * clip * (1 + 1e-4)
    assert free > 10 * clipped


# --- (e) crash-resume is exact ---

class Crash(Exception):
    pass


class CrashAfter(Recorder):
    """Checkpoints each epoch like the worker (torch.save of TrainState.state_dict()), then dies."""

    def __init__(self, crash_after: int):
        super().__init__()
        self.crash_after = crash_after
        self.checkpoint = None

    def epoch(self, epoch, metrics, state):
        super().epoch(epoch, metrics, state)
        buffer = io.BytesIO()
        torch.save(state.state_dict(), buffer)
        self.checkpoint = buffer.getvalue()
        if epoch == self.crash_after:
            raise Crash()


@pytest.mark.parametrize("overrides", [
    {"model": "mnist-best-augment", "epochs": 3, "train_subset": 3000},
    {"model": "cifar-vgg-179k", "epochs": 3, "train_subset": 256, "test_subset": 256,
     "augment": "flip-crop"},
    # OneCycleLR, stepped per batch (the ResNet's scheduler), on a cheap network
    {"model": "mnist-3fc-2bn-51k", "epochs": 3, "train_subset": 3000, "scheduler": "onecycle"},
], ids=lambda o: f'{o["model"]}-{o.get("scheduler", "default")}')
def test_resume_from_a_checkpoint_equals_training_straight(overrides):
    straight = run(overrides).exact()
    assert sorted(straight) == [1, 2, 3]

    crashed = CrashAfter(crash_after=2)
    with pytest.raises(Crash):
        run(overrides, crashed)
    assert crashed.exact() == {e: straight[e] for e in (1, 2)}

    torch.manual_seed(12345)  # a fresh process would not share the crashed run's RNG state
    checkpoint = torch.load(io.BytesIO(crashed.checkpoint), map_location=CPU, weights_only=False)
    assert checkpoint["epoch"] == 2
    resumed = run(overrides, resume=checkpoint).exact()
    assert resumed == {3: straight[3]}


# --- (f) the big presets learn: loss falls on a few hundred images ---

# The ResNet's defaults (Adam, OneCycleLR to lr 1e-2, batch 400) are a 10-epoch recipe: on one
# or two batches per epoch the one-cycle peak comes within a few steps and the loss jumps
# (2.96 -> 10.4 -> 5.3 at 512 images, 3 epochs). Its smoke run takes 4 batches of 64 per
# epoch at a peak lr of 1e-3, which only checks that the network learns.
SMOKE = {model: {"epochs": 3, "train_subset": 256, "test_subset": 256} for model in BIG_PRESETS}
SMOKE["cifar-resnet-6.6m"] = {"epochs": 2, "train_subset": 256, "test_subset": 256,
                              "batch_size": 64, "lr": 1e-3}


@pytest.mark.parametrize("model", BIG_PRESETS)
def test_big_preset_loss_falls_on_a_small_subset(model):
    rec = run({"model": model, **SMOKE[model]})
    losses = [m["train_loss"] for m in rec.epochs.values()]
    assert len(losses) == SMOKE[model]["epochs"]
    assert all(math.isfinite(x) for x in losses), losses
    assert all(math.isfinite(m["test_loss"]) and 0 <= m["test_acc"] <= 1 for m in rec.epochs.values())
    assert losses[-1] < losses[0], f"{model}: train loss per epoch {losses} did not fall"


# --- (g) the inception two-step schedule ---

def test_two_step_schedule_augments_only_from_augment_from_epoch(monkeypatch):
    preset = get_preset("cifar-inception-2step")
    # The notes: 5 epochs plain, then 5 epochs with AutoAugment.
    assert (preset.defaults["epochs"], preset.defaults["augment"], preset.defaults["augment_from_epoch"]) \
        == (10, "autoaugment", 6)

    real = loader_module.augment_batch
    seen: list[str] = []

    def spy(name, images, generator):
        seen.append(name)
        return real(name, images, generator)

    class PerEpoch(Recorder):
        def __init__(self):
            super().__init__()
            self.names: dict[int, set[str]] = {}

        def epoch(self, epoch, metrics, state):
            super().epoch(epoch, metrics, state)
            self.names[epoch] = set(seen)
            seen.clear()

    monkeypatch.setattr(loader_module, "augment_batch", spy)
    # The preset's own schedule (epochs 10, augment from 6) on one batch per epoch.
    rec = run({"model": preset.id, "train_subset": 32, "test_subset": 16}, PerEpoch())
    assert rec.names == {e: {"none"} if e < 6 else {"autoaugment"} for e in range(1, 11)}

    # Resuming inside the plain phase keeps the switch at the same epoch.
    crashed = CrashAfter(crash_after=4)
    with pytest.raises(Crash):
        run({"model": preset.id, "epochs": 6, "train_subset": 32, "test_subset": 16}, crashed)
    seen.clear()
    checkpoint = torch.load(io.BytesIO(crashed.checkpoint), map_location=CPU, weights_only=False)
    resumed = run({"model": preset.id, "epochs": 6, "train_subset": 32, "test_subset": 16},
                  PerEpoch(), resume=checkpoint)
    assert resumed.names == {5: {"none"}, 6: {"autoaugment"}}


# --- (h) Fashion-MNIST ---

@pytest.mark.skipif(find("fashion-mnist", DATA_DIR) is None,
                    reason=f"Fashion-MNIST not installed: neither {DATA_DIR}/FashionMNIST/raw nor "
                           f"{DEBIAN_FASHION_DIR} (apt-get install dataset-fashion-mnist)")
def test_fashion_mnist_loads_and_trains():
    data = load("fashion-mnist", DATA_DIR, CPU)
    assert data.classes == DATASETS["fashion-mnist"].class_names
    assert tuple(data.train_x.shape) == (60000, 1, 28, 28) and tuple(data.test_x.shape) == (10000, 1, 28, 28)
    assert data.train_x.dtype == torch.uint8
    assert torch.bincount(data.train_y).tolist() == [6000] * 10
    assert torch.bincount(data.test_y).tolist() == [1000] * 10
    # Not MNIST under another name.
    mnist = load("mnist", DATA_DIR, CPU)
    assert not torch.equal(data.test_x[:100], mnist.test_x[:100])

    rec = run({"model": "mnist-3fc-2bn-51k", "dataset": "fashion-mnist", "epochs": 1})
    assert rec.epochs[1]["test_acc"] > 0.80  # a 51k MLP gets ~85% after one epoch
