"""Runs that differ only in their seed, trained together as one stacked network.

Seed k of a group sees exactly what `trainer.train.train` would show it alone: each seed is
set up by train()'s own `prepare()` (the initial weights built after torch.manual_seed(seed),
its generator and its `trainer.loader.Batches`: its data order and augmentation draws, in the
same sequence), and draws its dropout masks from its own state of the device's default
generator. Each layer becomes a stacked layer that keeps the seeds' numbers apart: linear ->
a batched matmul over K weight matrices, conv -> a convolution with K groups, batch norm ->
one batch norm over K x C channels, dropout -> one mask per seed from its own generator state. The loss is the sum of the seeds' mean losses, so each seed's gradient is its
solo gradient; Adam/AdamW/SGD, weight decay and value clipping act element by element and the
lr schedulers on step counts, so one optimiser over the stack is K solo optimisers. Only the
floating-point summation order differs from K solo runs.

To everything else the group is K runs: each seed has its own reporter and should_stop, its own
metrics, and checkpoints in exactly the format of a solo run's TrainState.state_dict(), so
train() can resume a seed alone. A group resumes from per-seed checkpoints of one epoch (seeds
at different epochs are refused: train them separately). A seed that is cancelled, diverges or
whose reporter raises leaves the group (its outcome is that exception, also handed to
`on_leave` at once, so a caller can end that run while the others go on).

Activations: images are (B, K*C, H, W), seed k's channels k*C..(k+1)*C; vectors are (K, F, B),
feature-major, so that a linear layer is one baddbmm on plain strides whose weight gradient
lands in the weight's own layout, and a batch norm a view (bench/README.md, section 6).

    python -m trainer.stacked mnist-3fc-2bn-51k --seeds 0 1 2 [--epochs 2] [--data ../shared/data]

Tests: tests/test_stacked.py. Speed: python -m bench.seeds (bench/README.md).
"""

import argparse
import math
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from trainer.config import RunConfig, resolve
from trainer.data import Dataset
from trainer.devices import peak_memory_bytes, pick_device
from trainer.layers import parse_layers
from trainer.nets import ConvBlock, ResBlock
from trainer.train import (
    CPU_CONVNET_EVAL_BATCH,
    EVAL_BATCH,
    FIRST_PROGRESS_SECONDS,
    Diverged,
    Evaluation,
    Reporter,
    Setup,
    Stopped,
    eta_seconds,
    learn,
    make_optimizer,
    make_scheduler,
    prepare,
)

# Layer name -> the activation it takes ("image" or "vector"; None: either).
LAYOUTS = {"flatten": "image", "linear": "vector", "bn1d": "vector", "conv": "image", "bn2d": "image",
           "maxpool": "image", "convblock": "image", "resblock": "image",
           "relu": None, "sigmoid": None, "dropout": None}


def default_generator(device: torch.device) -> torch.Generator:
    """The generator dropout draws from on `device`."""
    if device.type == "cpu":
        return torch.default_generator
    return torch.cuda.default_generators[device.index if device.index is not None else torch.cuda.current_device()]


class SeedRNG:
    """Each seed's state of the device's default generator, swapped in for that seed's draws."""

    def __init__(self, device: torch.device, states: list[torch.Tensor]):
        self.generator, self.states = default_generator(device), states

    def each(self, parts: Sequence[torch.Tensor], fn: Callable[[torch.Tensor], torch.Tensor]) -> list[torch.Tensor]:
        saved = self.generator.get_state()
        out = []
        try:
            for k, part in enumerate(parts):
                self.generator.set_state(self.states[k])
                out.append(fn(part))
                self.states[k] = self.generator.get_state()
        finally:
            self.generator.set_state(saved)
        return out


class StackedLinear(nn.Module):
    def __init__(self, seeds: int, linear: nn.Linear):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(seeds, *linear.weight.shape))
        self.bias = nn.Parameter(torch.empty(seeds, *linear.bias.shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias.unsqueeze(2), self.weight, x)


class StackedConv2d(nn.Module):
    def __init__(self, seeds: int, conv: nn.Conv2d):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(seeds, *conv.weight.shape))
        self.bias = nn.Parameter(torch.empty(seeds, *conv.bias.shape))
        self.stride, self.padding, self.seeds = conv.stride, conv.padding, seeds

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight.flatten(0, 1), self.bias.flatten(), self.stride, self.padding,
                        groups=self.seeds)


class StackedBatchNorm(nn.Module):
    """BatchNorm1d/2d over K x C channels: every statistic stays within its seed's channels."""

    def __init__(self, seeds: int, bn: nn.BatchNorm1d | nn.BatchNorm2d):
        super().__init__()
        c = bn.num_features
        self.weight = nn.Parameter(torch.empty(seeds, c))
        self.bias = nn.Parameter(torch.empty(seeds, c))
        self.register_buffer("running_mean", torch.zeros(seeds, c))
        self.register_buffer("running_var", torch.ones(seeds, c))
        self.register_buffer("num_batches_tracked", torch.zeros(seeds, dtype=torch.long))
        self.eps, self.momentum = bn.eps, bn.momentum

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.num_batches_tracked.add_(1)
        shape = x.shape
        if x.dim() == 3:  # (K, F, B) is (1, K*F, B) to batch_norm: statistics over B, as (B, F) alone
            x = x.reshape(1, -1, shape[2])
        y = F.batch_norm(x, self.running_mean.view(-1), self.running_var.view(-1), self.weight.view(-1),
                         self.bias.view(-1), self.training, self.momentum, self.eps)
        return y.view(shape)


class StackedDropout(nn.Module):
    def __init__(self, p: float, rng: SeedRNG):
        super().__init__()
        self.p, self.rng = p, rng

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        # A mask is drawn in memory order: each seed's slice takes the layout its solo input has.
        if x.dim() == 3:  # (K, F, B); alone (B, F)
            parts = x.transpose(1, 2).contiguous().unbind(0)
            return torch.stack(self.rng.each(parts, lambda part: F.dropout(part, self.p, True))).transpose(1, 2)
        if x.dim() == 5:  # (K, B, C, H, W), the input of a network that starts with flatten
            return torch.stack(self.rng.each(x.unbind(0), lambda part: F.dropout(part, self.p, True)))
        layout = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
        parts = x.chunk(len(self.rng.states), 1)
        return torch.cat(self.rng.each(parts, lambda part: F.dropout(part.contiguous(memory_format=layout),
                                                                     self.p, True)), 1)


class StackedResBlock(nn.Module):
    """trainer.nets.ResBlock on stacked images: the residual sum is element-wise."""

    def __init__(self, layers: nn.Module):
        super().__init__()
        self.layers = layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.layers(x) + x)


class StackedFlatten(nn.Module):
    def __init__(self, seeds: int):
        super().__init__()
        self.seeds = seeds

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 5:  # (K, B, C, H, W)
            return x.flatten(2).transpose(1, 2)
        return x.unflatten(1, (self.seeds, -1)).flatten(2).permute(1, 2, 0)


def stack_module(m: nn.Module, seeds: int, rng: SeedRNG) -> nn.Module:
    """The stacked twin of a solo network: same state_dict keys, every tensor with a leading K axis."""
    match m:
        case nn.Linear():
            return StackedLinear(seeds, m)
        case nn.Conv2d() if m.groups == 1 and m.dilation == (1, 1) and m.padding_mode == "zeros":
            return StackedConv2d(seeds, m)
        case nn.BatchNorm1d() | nn.BatchNorm2d():
            return StackedBatchNorm(seeds, m)
        case nn.Dropout():
            return StackedDropout(m.p, rng)
        case nn.Flatten():
            return StackedFlatten(seeds)
        case nn.ReLU() | nn.Sigmoid() | nn.MaxPool2d():
            return m
        case ResBlock():
            return StackedResBlock(stack_module(m.layers, seeds, rng))
        case nn.Sequential() if type(m) in (nn.Sequential, ConvBlock):
            return nn.Sequential(*(stack_module(child, seeds, rng) for child in m))
    raise ValueError(f"{type(m).__name__} cannot be stacked")


def group_problem(configs: Sequence[RunConfig], resumes: Sequence[dict | None] = ()) -> str | None:
    """Why these runs cannot train as one stacked group; None when they can."""
    if not configs:
        return "a group needs at least one run"
    first = configs[0].model_dump(exclude={"seed", "name"})
    for config in configs[1:]:
        differ = sorted(k for k, v in config.model_dump(exclude={"seed", "name"}).items() if first[k] != v)
        if differ:
            return f"the runs differ in {', '.join(differ)}, not only in seed"
    layout = "image"
    for spec in parse_layers(configs[0].layers):
        if spec.kind not in LAYOUTS:
            return f"layer {str(spec)!r} cannot be stacked (stackable: {', '.join(LAYOUTS)})"
        if LAYOUTS[spec.kind] not in (None, layout):
            return f"layer {str(spec)!r} takes {LAYOUTS[spec.kind]} input but gets {layout} input"
        if spec.kind == "flatten":
            layout = "vector"
    if layout != "vector":
        return "the network must end in vectors (flatten, then linear layers)"
    epochs = sorted({resume["epoch"] if resume else 0 for resume in resumes})
    if len(epochs) > 1:
        return (f"the checkpoints are at epochs {', '.join(map(str, epochs))}: a group resumes from one epoch "
                "(train these runs separately)")
    return None


def _per_seed(value) -> bool:
    # Optimiser state tensors shaped like their parameter; the rest (Adam's `step`) is 0-dim.
    return torch.is_tensor(value) and value.dim() > 0


@dataclass
class _Seed:
    index: int            # position in the caller's lists
    setup: Setup          # what train() would train it with: its solo network (loaded with its
                          # weights at each checkpoint), generator and batch source
    cpu_rng: torch.Tensor  # a solo run's torch_rng off the CPU (dropout draws from the device's generator)
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]] | None = None  # this epoch's


class SeedGroup:
    """Runs that differ only in seed: one stacked network, optimiser and scheduler, and per seed
    its own generators and batch source. Built from nothing (each seed's initial weights) or
    from per-seed checkpoints of one epoch."""

    def __init__(self, configs: Sequence[RunConfig], data: Dataset, device: torch.device,
                 resumes: Sequence[dict | None] | None = None):
        resumes = list(resumes or [None] * len(configs))
        problem = group_problem(configs, resumes)
        if problem:
            raise ValueError(problem)
        self.config, self.device = configs[0], device
        self.epoch = resumes[0]["epoch"] if resumes[0] else 0
        self.seeds: list[_Seed] = []
        parts, rng_states = [], []
        for i, (config, resume) in enumerate(zip(configs, resumes, strict=True)):
            setup = prepare(config, data, device)
            if resume:
                setup.state.load_state_dict(resume)  # also sets the CPU generator to the seed's torch_rng
            setup.batches.channels_last = False  # the group lays out the stacked batch itself
            cpu_rng = torch.get_rng_state()
            # On a GPU train() seeds the device's generator and never checkpoints it.
            rng_states.append(cpu_rng if device.type == "cpu" else default_generator(device).get_state())
            parts.append(setup.state.state_dict())
            self.seeds.append(_Seed(i, setup, cpu_rng))
        self.setup = self.seeds[0].setup  # the test set, normalisation and layout, alike for every seed
        self.steps_per_epoch = len(self.setup.batches)
        self.rng = SeedRNG(device, rng_states)
        self.channels_last = self.setup.channels_last
        first = next((m for m in self.setup.state.model if not isinstance(m, (nn.ReLU, nn.Sigmoid, nn.Dropout))),
                     None)
        self.images = not isinstance(first, nn.Flatten)  # else the input is (K, B, C, H, W)
        self._stack(parts)

    def _stack(self, parts: list[dict]) -> None:
        self.model = stack_module(self.seeds[0].setup.state.model, len(parts), self.rng).to(self.device)
        self.model.load_state_dict({key: torch.stack([p["model"][key] for p in parts]) for key in parts[0]["model"]})
        self.optimizer = make_optimizer(self.config, self.model.parameters())
        self.scheduler = make_scheduler(self.config, self.optimizer, self.steps_per_epoch)
        states = [p["optimizer"]["state"] for p in parts]
        self.optimizer.load_state_dict({"param_groups": parts[0]["optimizer"]["param_groups"], "state": {
            i: {name: torch.stack([s[i][name] for s in states]) if _per_seed(v) else v for name, v in st.items()}
            for i, st in states[0].items()}})
        if self.scheduler:
            self.scheduler.load_state_dict(parts[0]["scheduler"])

    def batch(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        """One normalised (B, C, H, W) batch per seed -> the stacked network's input."""
        if not self.images:
            return torch.stack(inputs)
        x = torch.stack(inputs, 1).flatten(1, 2)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(K, B, classes)."""
        return self.model(x).transpose(1, 2)

    def checkpoint(self, j: int) -> dict:
        """Seed j's state in exactly the format of a solo run's TrainState.state_dict() (copies)."""
        s, opt = self.seeds[j], self.optimizer.state_dict()
        return {"epoch": self.epoch,
                "model": {key: v[j].clone() for key, v in self.model.state_dict().items()},
                "optimizer": {"state": {i: {name: v[j].clone() if _per_seed(v) else
                                            (v.clone() if torch.is_tensor(v) else v)
                                            for name, v in st.items()} for i, st in opt["state"].items()},
                              "param_groups": opt["param_groups"]},
                "scheduler": self.scheduler.state_dict() if self.scheduler else None,
                "generator": s.setup.state.generator.get_state(),
                "torch_rng": self.rng.states[j] if self.device.type == "cpu" else s.cpu_rng}

    def leave(self, gone: Collection[int]) -> list[int]:
        """Drop the seeds at positions `gone` and restack the others; returns the kept positions."""
        keep = [j for j in range(len(self.seeds)) if j not in gone]
        parts = [self.checkpoint(j) for j in keep]
        self.seeds = [self.seeds[j] for j in keep]
        self.rng.states = [self.rng.states[j] for j in keep]
        if keep:
            self._stack(parts)
        return keep


@dataclass
class SeedState:
    """What a seed's reporter gets each epoch: TrainState's interface for one seed of a group."""
    model: nn.Module  # the seed's own solo network, holding its weights after `epoch`
    epoch: int
    checkpoint: dict  # exactly the keys and layout of TrainState.state_dict()

    def state_dict(self) -> dict:
        return self.checkpoint


@torch.inference_mode()
def _evaluate(group: SeedGroup) -> list[Evaluation]:
    """trainer.train.evaluate for every seed at once."""
    group.model.eval()
    setup, k = group.setup, len(group.seeds)
    x, y = setup.test_x, setup.test_y
    loss_sums = torch.zeros(k, device=x.device)
    predictions = torch.empty(k, len(y), dtype=y.dtype, device=x.device)
    batch = CPU_CONVNET_EVAL_BATCH if group.channels_last and x.device.type == "cpu" else EVAL_BATCH
    for i in range(0, len(x), batch):
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=setup.autocast):
            out = group.logits(group.batch([setup.normalize(x[i:i + batch])] * k))
        yb = y[i:i + batch]
        loss_sums += F.cross_entropy(out.float().flatten(0, 1), yb.repeat(k), reduction="none").view(k, -1).sum(1)
        predictions[:, i:i + batch] = out.argmax(2)
    accs = (predictions == y).float().mean(1).tolist()
    return [Evaluation(loss / len(x), acc, p) for loss, acc, p in zip(loss_sums.tolist(), accs, predictions)]


def train_seeds(configs: Sequence[RunConfig], data: Dataset, reporters: Sequence[Reporter], device: torch.device,
                resumes: Sequence[dict | None] | None = None,
                should_stop: Sequence[Callable[[], bool]] | None = None,
                progress_seconds: float = 2.0,
                on_leave: Callable[[int, BaseException], None] = lambda index, why: None,
                ) -> list[Evaluation | BaseException]:
    """train() for runs that differ only in seed, as one stacked network; every argument but
    `data`, `device`, `progress_seconds` and `on_leave` is a list with one entry per run.

    Returns per run its final test evaluation, or the exception that ended it alone (Stopped,
    Diverged, or whatever its reporter or should_stop raised), which `on_leave(index, exception)`
    also gets as soon as the run leaves. Raises ValueError, with group_problem's reason, when
    the runs cannot train as one group."""
    should_stop = list(should_stop or [lambda: False] * len(configs))
    if len(reporters) != len(configs) or len(should_stop) != len(configs):
        raise ValueError("one reporter and one should_stop per run")
    config = configs[0]
    group = SeedGroup(configs, data, device, resumes)
    steps = group.steps_per_epoch
    outcomes: list[Evaluation | BaseException | None] = [None] * len(configs)

    def call(gone: dict[int, BaseException], j: int, fn, *args):
        try:
            return fn(*args)
        except Exception as e:  # a seed's own callback failing ends that seed only
            gone[j] = e

    def leave(gone: dict[int, BaseException]) -> list[int]:
        left = [(group.seeds[j].index, why) for j, why in gone.items()]
        keep = group.leave(gone)
        for index, why in left:
            outcomes[index] = why
            on_leave(index, why)
        return keep

    final: list[Evaluation] = []
    report_after = min(progress_seconds, FIRST_PROGRESS_SECONDS)
    for epoch in range(group.epoch + 1, config.epochs + 1):
        group.model.train()
        augment = config.augment if epoch >= config.augment_from_epoch else "none"
        lr = group.optimizer.param_groups[0]["lr"]
        started = last_report = time.perf_counter()
        loss_sums = torch.zeros(len(group.seeds), device=device)
        corrects = torch.zeros(len(group.seeds), device=device, dtype=torch.long)
        seen = 0
        for s in group.seeds:
            s.setup.batches.augment = augment
            s.batches = iter(s.setup.batches)
        for step in range(steps):
            inputs, labels = zip(*(next(s.batches) for s in group.seeds))
            xb, yb = group.batch(inputs), torch.stack(labels)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=group.setup.autocast):
                out = group.logits(xb)
                losses = F.cross_entropy(out.float().flatten(0, 1), yb.flatten(), reduction="none") \
                    .view(len(group.seeds), -1).mean(1)
            learn(config, group, losses.sum())  # d(sum)/d(loss_k) = 1: each seed gets its solo gradient
            loss_sums += losses.detach() * yb.shape[1]
            corrects += (out.argmax(2) == yb).sum(1)
            seen += yb.shape[1]
            gone: dict[int, BaseException] = {}
            for j, s in enumerate(group.seeds):
                if call(gone, j, should_stop[s.index]):
                    gone[j] = Stopped()
            now = time.perf_counter()
            if now - last_report >= report_after and step + 1 < steps:
                last_report, report_after = now, progress_seconds
                fraction = (step + 1) / steps
                eta = eta_seconds(now - started, fraction, epoch, config.epochs)
                for j, (train_loss, correct) in enumerate(zip((loss_sums / seen).tolist(), corrects.tolist())):
                    if j in gone:
                        continue
                    if not math.isfinite(train_loss):
                        gone[j] = Diverged(f"loss became NaN at epoch {epoch}")
                    else:
                        call(gone, j, reporters[group.seeds[j].index].progress, epoch - 1 + fraction, fraction,
                             train_loss, correct / seen, eta)
            if gone:
                keep = leave(gone)
                if not keep:
                    return outcomes
                loss_sums, corrects = loss_sums[keep], corrects[keep]
        train_losses, train_accs = (loss_sums / seen).tolist(), (corrects.float() / seen).tolist()
        gone = {j: Diverged(f"loss became NaN at epoch {epoch}")
                for j, loss in enumerate(train_losses) if not math.isfinite(loss)}
        if gone:
            keep = leave(gone)
            if not keep:
                return outcomes
            train_losses, train_accs = [train_losses[j] for j in keep], [train_accs[j] for j in keep]
        train_seconds = time.perf_counter() - started
        final = _evaluate(group)
        if group.scheduler is not None and config.scheduler != "onecycle":
            group.scheduler.step()
        epoch_seconds = time.perf_counter() - started
        group.epoch = epoch
        for j, s in enumerate(group.seeds):
            checkpoint = group.checkpoint(j)
            model = s.setup.state.model
            model.load_state_dict(checkpoint["model"])
            call(gone, j, reporters[s.index].epoch, epoch, {
                "train_loss": train_losses[j], "train_acc": train_accs[j],
                "test_loss": final[j].loss, "test_acc": final[j].acc, "lr": lr,
                "epoch_seconds": epoch_seconds, "images_per_second": seen / train_seconds,
                "peak_memory_bytes": float(peak_memory_bytes(device)),
            }, SeedState(model, epoch, checkpoint))
        if gone:
            final = [final[j] for j in leave(gone)]
    if not final and group.seeds:  # resumed after the last epoch: nothing left to train
        final = _evaluate(group)
    for s, evaluation in zip(group.seeds, final):
        outcomes[s.index] = evaluation
    return outcomes


def main(argv=None) -> None:
    from trainer.data import load
    from trainer.devices import default_threads
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int)
    p.add_argument("--data", default="data")
    p.add_argument("--train-subset", type=int)
    p.add_argument("--threads", type=int, help="CPU threads (default: cores - 1, at least 1, as the worker)")
    args = p.parse_args(argv)
    configs = [resolve({"model": args.model, "epochs": args.epochs, "train_subset": args.train_subset, "seed": s})
               for s in args.seeds]
    torch.set_num_threads(args.threads or default_threads())
    device = pick_device()
    data = load(configs[0].dataset, args.data, device)

    class Print:
        def __init__(self, seed: int):
            self.seed = seed

        def epoch(self, epoch, m, state):
            print(f"seed {self.seed} epoch {epoch}: " + " ".join(f"{k} {v:.4g}" for k, v in m.items()), flush=True)

        def progress(self, epoch, fraction, loss, acc, eta):
            print(f"  seed {self.seed} {epoch:.2f}: train_loss {loss:.4f}", flush=True)

    train_seeds(configs, data, [Print(s) for s in args.seeds], device)


if __name__ == "__main__":
    main()
