"""Training speed: the notes' pipeline vs zoolab's trainer, same network, optimiser,
hyper-parameters, batch size and seed, on the same machine, in one process.

    python -m bench.train_speed                                  # the four presets below
    python -m bench.train_speed --presets mnist-3fc-2bn-51k --epochs 2 --repeats 3

Per preset and repeat, alternating (the order flips every repeat so drift in the
machine's load hits both sides alike):
  (a)  bench.notes_pipeline: torchvision dataset of PIL images, ToTensor + Normalize
       (+ the notes' RandomChoice augmentation), DataLoader(batch 64, shuffle=True,
       num_workers=0 as in a notebook), the plain per-batch loop;
  (a2) the same with num_workers=2 (only with --workers2; two loader processes on two cores);
  (b)  trainer.train.train on trainer.data.load's cached uint8 tensors.
Datasets are built/loaded once before timing on both sides (a notebook builds its
datasets once; a zoolab worker keeps them cached). Wall seconds cover training and the
per-epoch test evaluation; images/s is training images over training seconds.
The batch size is 64 on both sides (`--batch-size`), the other hyper-parameters the
preset's defaults; repeat r uses seed `--seed + r` on both sides. Both sides use the same
torch CPU thread count (`--threads`, default the worker's default). Prints figures only;
the ratio column is wall (a) / wall (b), the median of the per-repeat ratios.
"""

import argparse
import statistics
import time

import torch

from bench.notes_pipeline import datasets, train_notes
from trainer.config import resolve
from trainer.data import load
from trainer.devices import default_threads
from trainer.train import train

PRESETS = ("mnist-3fc-2bn-51k", "mnist-best-augment", "cifar-2conv5-2fc-bn-36k", "cifar-vgg-179k")
DEFAULT_EPOCHS = {"mnist": 2, "cifar10": 1}
SLICED = {"cifar-vgg-179k"}  # trained on the first --slice training images


class _Collect:
    def __init__(self):
        self.epochs: list[dict] = []

    def epoch(self, epoch, metrics, state):
        self.epochs.append(metrics)

    def progress(self, *args):
        pass


def run_zoolab(config, data) -> dict:
    reporter = _Collect()
    started = time.perf_counter()
    train(config, data, reporter, torch.device("cpu"), progress_seconds=1e9)
    wall = time.perf_counter() - started
    n = config.train_subset or len(data.train_x)
    train_seconds = sum(n / m["images_per_second"] for m in reporter.epochs)
    return {"wall": wall, "ips": n * len(reporter.epochs) / train_seconds, "acc": reporter.epochs[-1]["test_acc"]}


def run_notes(config, sets, num_workers: int) -> dict:
    started = time.perf_counter()
    records = train_notes(config, *sets, num_workers=num_workers)
    wall = time.perf_counter() - started
    train_seconds = sum(r["train_seconds"] for r in records)
    n = len(sets[0])
    return {"wall": wall, "ips": n * len(records) / train_seconds, "acc": records[-1]["test_acc"]}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", nargs="+", default=list(PRESETS))
    p.add_argument("--epochs", type=int, help="epochs per run (default 2 for MNIST, 1 for CIFAR-10)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=64, help="both sides (default 64, the notes' DataLoader)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--slice", type=int, default=5000, help="training images for cifar-vgg-179k")
    p.add_argument("--test-subset", type=int, help="evaluate on the first N test images (default all)")
    p.add_argument("--threads", type=int, default=default_threads())
    p.add_argument("--workers2", action="store_true", help="also time (a) with DataLoader num_workers=2")
    p.add_argument("--data", default="../shared/data")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, cpu, {torch.get_num_threads()} threads, {args.repeats} repeats; "
          f"(a) = notes' pipeline, (b) = zoolab", flush=True)
    summary = []
    for preset in args.presets:
        base = resolve({"model": preset})
        overrides = {"model": preset, "epochs": args.epochs or DEFAULT_EPOCHS[base.dataset],
                     "batch_size": args.batch_size,
                     "train_subset": args.slice if preset in SLICED else None, "test_subset": args.test_subset}
        data = load(base.dataset, args.data, torch.device("cpu"))
        sets = datasets(resolve(overrides), args.data)
        results: dict[str, list[dict]] = {"a": [], "a2": [], "b": []}
        for r in range(args.repeats):
            config = resolve({**overrides, "seed": args.seed + r})
            order = ["a", "b"] if r % 2 == 0 else ["b", "a"]
            if args.workers2:
                order.append("a2")
            for side in order:
                if side == "b":
                    res = run_zoolab(config, data)
                else:
                    res = run_notes(config, sets, 0 if side == "a" else 2)
                results[side].append(res)
                print(f"  {preset} repeat {r} ({side}): {res['wall']:.2f} s, {res['ips']:.0f} img/s, "
                      f"test acc {res['acc'] * 100:.2f}%", flush=True)
        summary.append((preset, config, results))
    print()
    header = (f"{'preset':<26} {'epochs':>6} {'images':>6} {'side':<5} {'wall s':>8} {'img/s':>8} "
              f"{'test acc':>8} {'(a)/(b)':>8}")
    print(header)
    print("-" * len(header))
    for preset, config, results in summary:
        ratios = [a["wall"] / b["wall"] for a, b in zip(results["a"], results["b"])]
        for side in ("a", "a2", "b"):
            runs = results[side]
            if not runs:
                continue
            med = {k: statistics.median(x[k] for x in runs) for k in ("wall", "ips", "acc")}
            ratio = ""
            if side == "a":
                ratio = f"{statistics.median(ratios):.1f}x"
            elif side == "a2":
                ratio = f"{statistics.median(a['wall'] / b['wall'] for a, b in zip(runs, results['b'])):.1f}x"
            images = config.train_subset or (60000 if config.dataset == "mnist" else 50000)
            print(f"{preset:<26} {config.epochs:>6} {images:>6} {side:<5} {med['wall']:>8.2f} {med['ips']:>8.0f} "
                  f"{med['acc'] * 100:>7.2f}% {ratio:>8}")
        accs = [statistics.median(x["acc"] for x in results[s]) for s in ("a", "b")]
        print(f"{'':<26} test acc (b) - (a): {(accs[1] - accs[0]) * 100:+.2f} points; "
              f"per-repeat ratios {', '.join(f'{x:.1f}' for x in ratios)}")


if __name__ == "__main__":
    main()
