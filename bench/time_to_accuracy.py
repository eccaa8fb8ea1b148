"""Time to the notes' accuracy: for each MNIST preset with its defaults, wall seconds
until the test accuracy (evaluated after every epoch) first reaches the figure the notes
recorded, zoolab's trainer vs the notes' pipeline (bench.notes_pipeline: DataLoader,
batch 64, num_workers=0) with the same hyper-parameters, on the same machine, in one process.

    python -m bench.time_to_accuracy                                   # every MNIST preset with a figure
    python -m bench.time_to_accuracy --presets mnist-logreg mnist-3fc-2bn-explr

Both clocks start at the training call, with the dataset already built (notebook) or
cached (a warm zoolab worker), and include the per-epoch test evaluation. Each side stops
at the first epoch at or above the figure, or after the preset's default epochs (or
--max-epochs): "not reached" then. The two sides alternate which goes first per preset.
Both use the same torch CPU thread count (`--threads`, default the worker's default).
Prints figures only.
"""

import argparse
import time

import torch

from bench.notes_pipeline import datasets, train_notes
from trainer.config import resolve
from trainer.data import load
from trainer.devices import default_threads
from trainer.train import train
from trainer.zoo import get_preset, presets_for


class _Reached(Exception):
    pass


def zoolab_time(config, data, target: float) -> tuple[float | None, int, float]:
    """(seconds to target or None, epochs run, best accuracy)."""
    best = [0.0, 0]
    started = time.perf_counter()
    seconds = None

    class Reporter:
        def epoch(self, epoch, metrics, state):
            best[0], best[1] = max(best[0], metrics["test_acc"]), epoch
            if metrics["test_acc"] >= target:
                raise _Reached

        def progress(self, *args):
            pass

    try:
        train(config, data, Reporter(), torch.device("cpu"), progress_seconds=1e9)
    except _Reached:
        seconds = time.perf_counter() - started
    return seconds, best[1], best[0]


def notes_time(config, sets, target: float) -> tuple[float | None, int, float, float]:
    """(seconds to target or None, epochs run, best accuracy, wall seconds of all epochs run)."""
    state = {"best": 0.0, "epoch": 0, "seconds": None, "wall": 0.0}

    def on_epoch(epoch, record):
        state["best"], state["epoch"] = max(state["best"], record["test_acc"]), epoch
        state["wall"] = record["wall_seconds"]
        if record["test_acc"] >= target:
            state["seconds"] = record["wall_seconds"]
            return True
        return False

    train_notes(config, *sets, num_workers=0, on_epoch=on_epoch)
    return state["seconds"], state["epoch"], state["best"], state["wall"]


def _fmt(result) -> str:
    seconds, epochs, best = result[:3]
    if seconds is None:
        return f"{'not reached':>11} {epochs:>3} ep (best {best * 100:.2f}%)"
    return f"{seconds:>10.1f}s {epochs:>3} ep ({best * 100:.2f}%)   "


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    with_figure = [pr.id for pr in presets_for("mnist") if pr.notes_acc is not None]
    p.add_argument("--presets", nargs="+", default=with_figure)
    p.add_argument("--max-epochs", type=int, help="cap on epochs for both sides (default: the preset's epochs)")
    p.add_argument("--threads", type=int, default=default_threads())
    p.add_argument("--data", default="../shared/data")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = load("mnist", args.data, torch.device("cpu"))
    print(f"torch {torch.__version__}, cpu, {torch.get_num_threads()} threads; wall seconds to the notes' "
          f"test accuracy (seconds, epochs needed, accuracy then)", flush=True)
    header = f"{'preset':<24} {'target':>7} {'notes s':>7}  {'zoolab':<32} {'notes pipeline':<32} {'speed-up':>8}"
    rows = []
    for i, preset_id in enumerate(args.presets):
        config = resolve({"model": preset_id, **({"epochs": args.max_epochs} if args.max_epochs else {})})
        preset = get_preset(preset_id)
        target = preset.notes_acc
        sets = datasets(config, args.data)
        sides = ["b", "a"] if i % 2 == 0 else ["a", "b"]
        result = {}
        for side in sides:
            result[side] = zoolab_time(config, data, target) if side == "b" else notes_time(config, sets, target)
            print(f"  {preset_id} ({side}): {_fmt(result[side])}", flush=True)
        a, b = result["a"][0], result["b"][0]
        if a is not None and b is not None:
            speedup = f"{a / b:.1f}x"
        elif b is not None:  # the notes' pipeline never got there: a lower bound
            speedup = f">{result['a'][3] / b:.1f}x"
        else:
            speedup = "n/a"
        rows.append(f"{preset_id:<24} {target * 100:>6.2f}% {preset.notes_seconds or 0:>7.0f}  "
                    f"{_fmt(result['b']):<32} {_fmt(result['a']):<32} {speedup:>8}")
    print()
    print(header)
    print("-" * len(header))
    print("\n".join(rows))


if __name__ == "__main__":
    main()
