"""Does every preset reproduce the notes' experiment? Train presets with their defaults on
the real datasets through `trainer.train.train` (no server, no database) and compare with
the notes' recorded accuracy and time.

    python -m bench.reproduce                              # MNIST + small CIFAR presets
    python -m bench.reproduce --presets mnist-logreg cifar-2conv5-2fc-bn-36k
    python -m bench.reproduce --presets all --markdown     # every preset, a Markdown table
    python -m bench.reproduce --presets mnist --epochs 1 --train-subset 6000   # smoke run

--presets takes preset ids and the groups `mnist` (the 12 MLPs), `cifar-small` (the CIFAR
convnets up to cifar-3conv-2fc-bn-41k) and `all`. Data: --data, else ZOOLAB_DATA_DIR, else
../shared/data relative to the repository. Best accuracy is the maximum test accuracy over
epochs (the notes recorded the max); final is the last epoch's. "reached" compares best with
the notes' figure ("-" where the notes recorded none). Wall seconds cover training and the
per-epoch test evaluation, not dataset loading; the notes' seconds are from an unknown
machine and a per-image DataLoader pipeline. Prints figures only; exits 0.
"""

import argparse
import os
import sys
import time
from pathlib import Path

# On a CPU shared with other processes, OpenMP threads that spin while waiting make a
# 2-thread run 10-40x slower (measured: 1.1 s -> 30-50 s per MNIST epoch under load);
# passive waiting keeps it at ~1-2 s. Must be set before torch loads OpenMP.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from trainer.config import resolve  # noqa: E402
from trainer.data import load  # noqa: E402
from trainer.train import train  # noqa: E402
from trainer.zoo import PRESETS, presets_for  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data"
LAST_SMALL_CIFAR = "cifar-3conv-2fc-bn-41k"
COLUMNS = ("preset", "epochs", "best acc", "final acc", "notes acc", "diff (pts)",
           "wall s", "notes s", "reached")


def small_cifar() -> list[str]:
    ids = [p.id for p in presets_for("cifar10")]
    return ids[:ids.index(LAST_SMALL_CIFAR) + 1]


def expand(names: list[str]) -> list[str]:
    groups = {"mnist": lambda: [p.id for p in presets_for("mnist")],
              "cifar-small": small_cifar, "all": lambda: list(PRESETS)}
    out: list[str] = []
    for name in names:
        if name in groups:
            ids = groups[name]()
        elif name in PRESETS:
            ids = [name]
        else:
            raise SystemExit(f"unknown preset or group {name!r}; groups: {', '.join(groups)}; "
                             f"presets: {', '.join(PRESETS)}")
        out += [i for i in ids if i not in out]
    return out


class Recorder:
    def __init__(self, verbose: bool):
        self.epochs: list[dict[str, float]] = []
        self.verbose = verbose

    def epoch(self, epoch, metrics, state):
        self.epochs.append(dict(metrics, epoch=epoch))
        if self.verbose:
            print(f"    epoch {epoch:2d}: test_acc {metrics['test_acc']:.4f} "
                  f"train_loss {metrics['train_loss']:.4f} lr {metrics['lr']:.3g} "
                  f"{metrics['epoch_seconds']:.1f} s", file=sys.stderr, flush=True)

    def progress(self, *args, **kwargs):
        pass


def run_preset(model_id: str, data_dir: Path, device: torch.device, overrides: dict,
               verbose: bool) -> dict:
    config = resolve({"model": model_id, **overrides})
    data = load(config.dataset, data_dir, device)
    recorder = Recorder(verbose)
    started = time.perf_counter()
    train(config, data, recorder, device, progress_seconds=float("inf"))
    seconds = time.perf_counter() - started
    accs = [m["test_acc"] for m in recorder.epochs]
    best = max(accs)
    preset = PRESETS[model_id]
    return dict(preset=model_id, epochs=config.epochs, best=best,
                best_epoch=accs.index(best) + 1, final=accs[-1],
                notes=preset.notes_acc, seconds=seconds, notes_seconds=preset.notes_seconds)


def cells(r: dict) -> list[str]:
    notes = r["notes"]
    return [
        r["preset"], str(r["epochs"]),
        f"{r['best']:.2%} (ep {r['best_epoch']})", f"{r['final']:.2%}",
        "-" if notes is None else f"{notes:.2%}",
        "-" if notes is None else f"{100 * (r['best'] - notes):+.2f}",
        f"{r['seconds']:.1f}" if r["seconds"] < 10 else f"{r['seconds']:.0f}",
        "-" if r["notes_seconds"] is None else f"{r['notes_seconds']:.0f}",
        "-" if notes is None else ("yes" if r["best"] >= notes else "NO"),
    ]


def print_table(rows: list[dict], markdown: bool) -> None:
    table = [list(COLUMNS)] + [cells(r) for r in rows]
    if markdown:
        print("| " + " | ".join(COLUMNS) + " |")
        print("|" + "|".join("---" if i == 0 else "---:" for i in range(len(COLUMNS))) + "|")
        for row in table[1:]:
            print("| " + " | ".join(row) + " |")
        return
    widths = [max(len(row[i]) for row in table) for i in range(len(COLUMNS))]
    for row in table:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", nargs="+", default=["mnist", "cifar-small"],
                   help="preset ids or groups: mnist, cifar-small, all (default: mnist cifar-small)")
    p.add_argument("--data", type=Path,
                   default=Path(os.environ.get("ZOOLAB_DATA_DIR") or DEFAULT_DATA))
    p.add_argument("--epochs", type=int, help="override every preset's epochs (smoke runs)")
    p.add_argument("--train-subset", type=int, help="train on the first N images only")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, ...")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    p.add_argument("-v", "--verbose", action="store_true", help="per-epoch lines on stderr")
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    overrides = {"epochs": args.epochs, "train_subset": args.train_subset, "seed": args.seed}
    ids = expand(args.presets)
    print(f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} threads, "
          f"seed {args.seed}, data {args.data}", flush=True)
    rows = []
    for model_id in ids:
        if args.verbose:
            print(f"  {model_id}", file=sys.stderr, flush=True)
        rows.append(run_preset(model_id, args.data, device, overrides, args.verbose))
        print("  " + "  ".join(cells(rows[-1])), flush=True)
    print()
    print_table(rows, args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
