"""The training loop. It knows nothing of the web or the database: it reports through
a callback object and can be run on its own.

    python -m trainer.train mnist-3fc-2bn-51k [--epochs 3] [--data ../shared/data]

The dataset sits on the device as uint8 tensors; a batch is an index slice, augmented
and normalised on the device. Loss and accuracy accumulate on the device and are read
back only when reported (a host read is a device sync point)."""

import argparse
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from trainer.config import RunConfig, resolve
from trainer.data import Dataset, normalizer
from trainer.datasets import DATASETS
from trainer.devices import default_threads, peak_memory_bytes, pick_device
from trainer.loader import Batches
from trainer.nets import build_layers, is_convnet

EVAL_BATCH = 2000
# Convnets on a CPU evaluate ~2x faster in batches of a few hundred than of 2000 (the
# activations of 2000 images overflow the caches; bench/README.md); MLPs like big batches.
CPU_CONVNET_EVAL_BATCH = 256
# The first progress report of a call comes this soon, so a dashboard sees a new run move
# within a second or two of POST /runs even when epochs are long; later ones every progress_seconds.
FIRST_PROGRESS_SECONDS = 0.5
DIVERGENCE_POINTS = 20  # at most, the progress points of a diverged epoch's last stretch


class Diverged(RuntimeError):
    pass


@dataclass
class Stretch:
    """An epoch's running sums at its last progress report, from which the batches since are
    replayed when the loss stops being finite: a diverged run keeps its trace up to the NaN."""
    loss_sum: float = 0.0  # loss × images
    hits: int = 0
    seen: int = 0
    steps: int = 0

    def diverged(self, reporter: "Reporter", epoch: int, steps: int, recent: list) -> Diverged:
        """Reports (up to DIVERGENCE_POINTS of) the batches of `recent` before the first non-finite
        loss; returns the error to raise."""
        losses = torch.stack([loss for loss, _, _ in recent]).tolist()  # one sync, on the way out
        hits = torch.stack([h for _, h, _ in recent]).tolist()
        points, at = [], Stretch(self.loss_sum, self.hits, self.seen, self.steps)
        for loss, hit, (_, _, size) in zip(losses, hits, recent):
            if not math.isfinite(loss):
                break
            at = Stretch(at.loss_sum + loss * size, at.hits + hit, at.seen + size, at.steps + 1)
            points.append(at)
        stride = math.ceil(len(points) / DIVERGENCE_POINTS) or 1
        for p in points[::-stride][::-1]:  # evenly spaced, the last finite batch included
            reporter.progress(epoch - 1 + p.steps / steps, p.steps / steps, p.loss_sum / p.seen, p.hits / p.seen, None)
        return Diverged(f"loss became NaN at epoch {epoch}")


class Stopped(Exception):
    """The caller asked the loop to stop (cancellation); finished epochs are kept."""


class Reporter(Protocol):
    def epoch(self, epoch: int, metrics: dict[str, float], state: "TrainState") -> None: ...
    def progress(self, epoch: float, fraction: float, train_loss: float, train_acc: float,
                 eta_seconds: float | None) -> None: ...


@dataclass
class TrainState:
    """Everything needed to resume after `epoch` exactly where training left off."""
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    generator: torch.Generator
    epoch: int = 0

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler else None,
                "generator": self.generator.get_state(), "torch_rng": torch.get_rng_state()}

    def load_state_dict(self, d: dict) -> None:
        self.epoch = d["epoch"]
        self.model.load_state_dict(d["model"])
        self.optimizer.load_state_dict(d["optimizer"])
        if self.scheduler:
            self.scheduler.load_state_dict(d["scheduler"])
        self.generator.set_state(d["generator"])
        torch.set_rng_state(d["torch_rng"])


@dataclass
class Evaluation:
    loss: float
    acc: float
    predictions: torch.Tensor = field(repr=False)


def make_optimizer(config: RunConfig, params) -> torch.optim.Optimizer:
    # fused: one kernel per parameter for the whole update (CPU and CUDA); on the small
    # MLPs the optimiser step was ~40% of a step with foreach (bench/README.md).
    common = dict(lr=config.lr, weight_decay=config.weight_decay, fused=True)
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, momentum=config.momentum, nesterov=config.momentum > 0, **common)
    cls = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
    return cls(params, **common)


def make_scheduler(config: RunConfig, optimizer, steps_per_epoch: int):
    match config.scheduler:
        case "exponential":
            return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=config.gamma)
        case "polynomial":
            return torch.optim.lr_scheduler.PolynomialLR(optimizer, total_iters=config.total_iters,
                                                         power=config.power)
        case "onecycle":
            return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, epochs=config.epochs,
                                                       steps_per_epoch=steps_per_epoch)
    return None


@torch.inference_mode()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, normalize, channels_last: bool,
             autocast: bool) -> Evaluation:
    model.eval()
    loss_sum = torch.zeros((), device=x.device)
    predictions = torch.empty_like(y)
    batch = CPU_CONVNET_EVAL_BATCH if channels_last and x.device.type == "cpu" else EVAL_BATCH
    for i in range(0, len(x), batch):
        xb = normalize(x[i:i + batch])
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=autocast):
            out = model(xb)
        loss_sum += F.cross_entropy(out.float(), y[i:i + batch], reduction="sum")
        predictions[i:i + batch] = out.argmax(1)
    return Evaluation(loss_sum.item() / len(x), (predictions == y).float().mean().item(), predictions)


def learn(config: RunConfig, state: TrainState, loss: torch.Tensor) -> None:
    """Backward from `loss` and one optimiser step, with the config's clipping and onecycle's
    per-batch schedule. `state` needs only its model, optimizer and scheduler (trainer.stacked
    passes its stacked group)."""
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if config.grad_clip is not None:
        nn.utils.clip_grad_value_(state.model.parameters(), config.grad_clip)
    state.optimizer.step()
    if config.scheduler == "onecycle":
        state.scheduler.step()


def eta_seconds(elapsed: float, fraction: float, epoch: int, epochs: int) -> float:
    """Seconds left: the rest of this epoch and the epochs after it, at this epoch's pace."""
    return elapsed / fraction * (1 - fraction) + elapsed / fraction * (epochs - epoch)


@dataclass
class Setup:
    """A run ready to train: its state (what a checkpoint holds), its batch source, its test
    set, and how the model is laid out and cast on this device. `forward` is the model as
    called in a step (a torch.compile'd model where a benchmark wants one)."""
    config: RunConfig
    state: TrainState
    batches: Batches
    test_x: torch.Tensor
    test_y: torch.Tensor
    normalize: Callable
    channels_last: bool
    autocast: bool
    forward: Callable

    def step(self, inputs: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimisation step; returns the outputs and the loss (still on the device)."""
        device_type = inputs.device.type
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=self.autocast):
            out = self.forward(inputs)
            loss = F.cross_entropy(out.float(), labels)
        learn(self.config, self.state, loss)
        return out, loss

    def evaluate(self) -> Evaluation:
        return evaluate(self.state.model, self.test_x, self.test_y, self.normalize, self.channels_last,
                        self.autocast)


def prepare(config: RunConfig, data: Dataset, device: torch.device) -> Setup:
    """The network, optimiser, scheduler and batch source of `config`, seeded by it."""
    torch.manual_seed(config.seed)
    train_x, train_y = data.train_x[:config.train_subset], data.train_y[:config.train_subset]
    test_x, test_y = data.test_x[:config.test_subset], data.test_y[:config.test_subset]
    model = build_layers(config.layers).to(device)
    # channels_last helps convnets on CPU too (mkldnn convolutions and max-pooling are
    # faster in NHWC); bf16 autocast only on CUDA.
    channels_last = is_convnet(model)
    autocast = channels_last and device.type == "cuda"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    normalize = normalizer(config.normalize, DATASETS[data.name].channels, device)
    generator = torch.Generator(device).manual_seed(config.seed)
    batches = Batches(train_x, train_y, config.batch_size, generator, normalize, channels_last)
    optimizer = make_optimizer(config, model.parameters())
    scheduler = make_scheduler(config, optimizer, len(batches))
    return Setup(config, TrainState(model, optimizer, scheduler, generator), batches, test_x, test_y,
                 normalize, channels_last, autocast, forward=model)


def train(config: RunConfig, data: Dataset, reporter: Reporter, device: torch.device,
          resume: dict | None = None, should_stop=lambda: False, progress_seconds: float = 2.0) -> Evaluation:
    """Train `config` on `data`; returns the final evaluation on the test set."""
    setup = prepare(config, data, device)
    state, batches = setup.state, setup.batches
    if resume:
        state.load_state_dict(resume)
    steps = len(batches)
    final = None
    report_after = min(progress_seconds, FIRST_PROGRESS_SECONDS)
    for epoch in range(state.epoch + 1, config.epochs + 1):
        state.model.train()
        batches.augment = config.augment if epoch >= config.augment_from_epoch else "none"
        lr = state.optimizer.param_groups[0]["lr"]
        started = last_report = time.perf_counter()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        seen = 0
        last, recent = Stretch(), []  # the sums at the last report; (loss, hits, size) of each batch since
        for step, (inputs, labels) in enumerate(batches):
            out, loss = setup.step(inputs, labels)
            hits = (out.argmax(1) == labels).sum()
            loss_sum += loss.detach() * len(labels)
            correct += hits
            seen += len(labels)
            recent.append((loss.detach(), hits, len(labels)))
            if should_stop():
                raise Stopped()
            now = time.perf_counter()
            if now - last_report >= report_after and step + 1 < steps:
                last_report, report_after = now, progress_seconds
                train_loss = loss_sum.item() / seen  # sync point, every few seconds only
                if not math.isfinite(train_loss):
                    raise last.diverged(reporter, epoch, steps, recent)
                last, recent = Stretch(train_loss * seen, correct.item(), seen, step + 1), []
                fraction = (step + 1) / steps
                eta = eta_seconds(now - started, fraction, epoch, config.epochs)
                reporter.progress(epoch - 1 + fraction, fraction, train_loss, last.hits / seen, eta)
        train_loss, train_acc = loss_sum.item() / seen, correct.item() / seen
        if not math.isfinite(train_loss):
            raise last.diverged(reporter, epoch, steps, recent)
        train_seconds = time.perf_counter() - started
        final = setup.evaluate()
        if state.scheduler is not None and config.scheduler != "onecycle":
            state.scheduler.step()
        epoch_seconds = time.perf_counter() - started
        state.epoch = epoch
        reporter.epoch(epoch, {
            "train_loss": train_loss, "train_acc": train_acc,
            "test_loss": final.loss, "test_acc": final.acc, "lr": lr,
            "epoch_seconds": epoch_seconds, "images_per_second": seen / train_seconds,
            "peak_memory_bytes": float(peak_memory_bytes(device)),
        }, state)
    if final is None:  # resumed after the last epoch: nothing left to train
        final = setup.evaluate()
    return final


def main(argv=None) -> None:
    from trainer.data import load
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model")
    p.add_argument("--epochs", type=int)
    p.add_argument("--data", default="data")
    p.add_argument("--train-subset", type=int)
    p.add_argument("--threads", type=int, help="CPU threads (default: cores - 1, at least 1, as the worker)")
    args = p.parse_args(argv)
    config = resolve({"model": args.model, "epochs": args.epochs, "train_subset": args.train_subset})
    torch.set_num_threads(args.threads or default_threads())
    device = pick_device()
    data = load(config.dataset, args.data, device)

    class Print:
        def epoch(self, epoch, m, state):
            print(f"epoch {epoch}: " + " ".join(f"{k} {v:.4g}" for k, v in m.items()), flush=True)

        def progress(self, epoch, fraction, loss, acc, eta):
            print(f"  {epoch:.2f}: train_loss {loss:.4f}", flush=True)

    train(config, data, Print(), device)


if __name__ == "__main__":
    sys.exit(main())
