"""The training loop. It knows nothing of the web or the database: it reports through
a callback object and can be run on its own.

    python -m trainer.train mnist-3fc-2bn-51k [--epochs 3] [--data ../shared/data]

The dataset sits on the device as uint8 tensors; a batch is an index slice, augmented
and normalised on the device. Loss and accuracy accumulate on the device and are read
back only when reported (a host read is a device sync point)."""

import argparse
import math
import os
import resource
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from trainer.augment import augment_batch
from trainer.config import RunConfig, resolve
from trainer.data import Dataset, normalizer
from trainer.datasets import DATASETS
from trainer.nets import build_model, is_convnet

EVAL_BATCH = 2000
# Convnets on a CPU evaluate ~2x faster in batches of a few hundred than of 2000 (the
# activations of 2000 images overflow the caches; bench/README.md); MLPs like big batches.
CPU_CONVNET_EVAL_BATCH = 256
# The first progress report of a call comes this soon, so a dashboard sees a new run move
# within a second or two of POST /runs even when epochs are long; later ones every progress_seconds.
FIRST_PROGRESS_SECONDS = 0.5


class Diverged(RuntimeError):
    pass


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


def peak_memory_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


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


def train(config: RunConfig, data: Dataset, reporter: Reporter, device: torch.device,
          resume: dict | None = None, should_stop=lambda: False, progress_seconds: float = 2.0) -> Evaluation:
    """Train `config` on `data`; returns the final evaluation on the test set."""
    torch.manual_seed(config.seed)
    train_x, train_y = data.train_x, data.train_y
    if config.train_subset:
        train_x, train_y = train_x[:config.train_subset], train_y[:config.train_subset]
    test_x, test_y = data.test_x, data.test_y
    if config.test_subset:
        test_x, test_y = test_x[:config.test_subset], test_y[:config.test_subset]
    n, batch_size = len(train_x), config.batch_size
    # A last batch of one image would break BatchNorm's training statistics.
    steps_per_epoch = n // batch_size + (1 if n % batch_size > 1 else 0)

    model = build_model(config.model).to(device)
    # channels_last helps convnets on CPU too (mkldnn convolutions and max-pooling are
    # faster in NHWC); bf16 autocast only on CUDA.
    channels_last = is_convnet(model)
    autocast = channels_last and device.type == "cuda"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(config, model.parameters())
    scheduler = make_scheduler(config, optimizer, steps_per_epoch)
    state = TrainState(model, optimizer, scheduler, torch.Generator(device).manual_seed(config.seed))
    if resume:
        state.load_state_dict(resume)
    normalize = normalizer(config.normalize, DATASETS[data.name].channels, device)

    final = None
    report_after = min(progress_seconds, FIRST_PROGRESS_SECONDS)
    for epoch in range(state.epoch + 1, config.epochs + 1):
        model.train()
        augment = config.augment if epoch >= config.augment_from_epoch else "none"
        lr = optimizer.param_groups[0]["lr"]
        started = last_report = time.perf_counter()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        seen = 0
        order = torch.randperm(n, generator=state.generator, device=device)
        for step in range(steps_per_epoch):
            idx = order[step * batch_size:(step + 1) * batch_size]
            # index_select: the same rows as train_x[idx], several times faster on CPU
            xb = normalize(augment_batch(augment, train_x.index_select(0, idx), state.generator))
            yb = train_y.index_select(0, idx)
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                out = model(xb)
                loss = F.cross_entropy(out.float(), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip is not None:
                nn.utils.clip_grad_value_(model.parameters(), config.grad_clip)
            optimizer.step()
            if config.scheduler == "onecycle":
                scheduler.step()
            loss_sum += loss.detach() * len(idx)
            correct += (out.argmax(1) == yb).sum()
            seen += len(idx)
            if should_stop():
                raise Stopped()
            now = time.perf_counter()
            if now - last_report >= report_after and step + 1 < steps_per_epoch:
                last_report, report_after = now, progress_seconds
                train_loss = loss_sum.item() / seen  # sync point, every few seconds only
                if not math.isfinite(train_loss):
                    raise Diverged(f"loss became NaN at epoch {epoch}")
                fraction = (step + 1) / steps_per_epoch
                elapsed = now - started
                remaining_epochs = config.epochs - epoch
                eta = elapsed / fraction * (1 - fraction) + elapsed / fraction * remaining_epochs
                reporter.progress(epoch - 1 + fraction, fraction, train_loss, correct.item() / seen, eta)
        train_loss, train_acc = loss_sum.item() / seen, correct.item() / seen
        if not math.isfinite(train_loss):
            raise Diverged(f"loss became NaN at epoch {epoch}")
        train_seconds = time.perf_counter() - started
        final = evaluate(model, test_x, test_y, normalize, channels_last, autocast)
        if scheduler is not None and config.scheduler != "onecycle":
            scheduler.step()
        epoch_seconds = time.perf_counter() - started
        state.epoch = epoch
        reporter.epoch(epoch, {
            "train_loss": train_loss, "train_acc": train_acc,
            "test_loss": final.loss, "test_acc": final.acc, "lr": lr,
            "epoch_seconds": epoch_seconds, "images_per_second": seen / train_seconds,
            "peak_memory_bytes": float(peak_memory_bytes(device)),
        }, state)
    if final is None:  # resumed after the last epoch: nothing left to train
        final = evaluate(model, test_x, test_y, normalize, channels_last, autocast)
    return final


def default_threads() -> int:
    # Leave a core to the server (and anything else running): measured on a 2-core box
    # (bench/README.md), 2 OpenMP threads collapse 10-50x as soon as another process
    # wants a core (threads spin at barriers while one is descheduled); 1 thread does not.
    cores = os.cpu_count() or 1
    return max(1, cores - 1)


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


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
