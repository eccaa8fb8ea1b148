"""Three seeds of one preset: what the group costs against ONE seed as the worker trains it
today (trainer.train.train on 1 thread), and whether it learns the same.

    python -m bench.seeds                       # mnist-3fc-2bn-51k, batch 128, 5 epochs, full MNIST, 3 repeats
    python -m bench.seeds --epochs 1 --train-subset 10000 --repeats 1       # a quick look
    python -m bench.seeds --steps               # one training step: stacked modules vs torch.func.vmap
    python -m bench.seeds --steps --device cuda # the same on a GPU

Configurations, each measured next to its own baseline run (solo just before it in even
repeats, just after it in odd ones; the order of the configurations rotates every repeat), so
that the machine's load, which drifts by 2-5x within minutes here, hits both sides of a ratio:
  solo          seed 0 alone, train(), 1 thread: the baseline, the worker today
  sequential    seeds 0, 1, 2 one after another, train(), 1 thread (what 3 runs cost today)
  stacked-1t    the 3 seeds as one stacked network (trainer.stacked.train_seeds), 1 thread
  stacked-2t    the same on 2 threads
  stacked-2t-passive   the same with OMP_WAIT_POLICY=PASSIVE (idle OpenMP threads sleep, not spin)
  2-workers     two 1-thread worker processes take the 3 seeds from one queue with train():
                two in parallel, then the third
  2-workers-split      two 1-thread workers: one trains seeds 0-1 stacked, the other seed 2
Thread counts and OMP_WAIT_POLICY are fixed when torch starts, so every configuration runs in
warm child processes (started, data loaded and one tiny run trained before any clock starts; a
worker keeps its dataset cached too); the parent times each configuration from handing out its
jobs to the last result. Prints wall seconds, the ratio to the paired solo run (median of the
per-repeat ratios), the 1-minute load average seen before each run, and each group's mean best
test accuracy against the same seeds trained one by one (sequential).

--steps times one training step (forward, backward, optimiser; no data path) of: one seed's
network, the stacked group (trainer.stacked), and the group as torch.func.functional_call +
vmap over the seeds' stacked parameters and buffers (torch.func.stack_module_state); any MNIST
or CIFAR-10 preset (--model), alternating, medians of --repeats rounds.
"""

import argparse
import copy
import json
import os
import queue
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from trainer.config import resolve
from trainer.data import load, normalizer
from trainer.datasets import DATASETS
from trainer.nets import build_model, is_convnet
from trainer.stacked import SeedGroup, train_seeds
from trainer.train import make_optimizer, train

CPU = torch.device("cpu")
SEEDS = (0, 1, 2)
# name -> (workers as (threads, OMP_WAIT_POLICY=PASSIVE), jobs as (mode, seeds))
CONFIGURATIONS = {
    "solo": ([(1, False)], [("solo", [0])]),
    "sequential": ([(1, False)], [("solo", [s]) for s in SEEDS]),
    "stacked-1t": ([(1, False)], [("stacked", list(SEEDS))]),
    "stacked-2t": ([(2, False)], [("stacked", list(SEEDS))]),
    "stacked-2t-passive": ([(2, True)], [("stacked", list(SEEDS))]),
    "2-workers": ([(1, False), (1, False)], [("solo", [s]) for s in SEEDS]),
    "2-workers-split": ([(1, False), (1, False)], [("stacked", [0, 1]), ("solo", [2])]),
}


class _Best:
    def __init__(self):
        self.best = 0.0

    def epoch(self, epoch, metrics, state):
        self.best = max(self.best, metrics["test_acc"])

    def progress(self, *args):
        pass


def child(args) -> None:
    """A warm worker: reads one job per line from stdin, answers one JSON line on stdout."""
    torch.set_num_threads(args.threads)
    data = load("mnist", args.data, CPU)
    for line in sys.stdin:
        job = json.loads(line)
        configs = [resolve({**job["overrides"], "seed": seed}) for seed in job["seeds"]]
        reporters = [_Best() for _ in configs]
        started = time.perf_counter()
        if job["mode"] == "solo":
            train(configs[0], data, reporters[0], CPU, progress_seconds=float("inf"))
        else:
            train_seeds(configs, data, reporters, CPU, progress_seconds=float("inf"))
        print(json.dumps({"seconds": time.perf_counter() - started, "best": [r.best for r in reporters]}), flush=True)


class Worker:
    def __init__(self, threads: int, passive: bool, data: str):
        env = dict(os.environ)
        env.pop("OMP_WAIT_POLICY", None)
        if passive:
            env["OMP_WAIT_POLICY"] = "PASSIVE"
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.seeds", "--child", "--threads", str(threads),
                                      "--data", data], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env=env, cwd=Path(__file__).resolve().parents[1])

    def run(self, mode: str, seeds: list[int], overrides: dict) -> dict:
        self.proc.stdin.write(json.dumps({"mode": mode, "seeds": seeds, "overrides": overrides}) + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        if not answer:
            raise RuntimeError(f"worker {self.proc.pid} died")
        return json.loads(answer)


def run_configuration(workers: list[Worker], jobs: list[tuple[str, list[int]]], overrides: dict) -> tuple[float, dict]:
    """Wall seconds until every job is done, the workers taking jobs from one queue; best acc by seed."""
    todo: queue.Queue = queue.Queue()
    for job in jobs:
        todo.put(job)
    best: dict[int, float] = {}
    errors: list[BaseException] = []

    def serve(worker: Worker) -> None:
        try:
            while True:
                try:
                    mode, seeds = todo.get_nowait()
                except queue.Empty:
                    return
                best.update(zip(seeds, worker.run(mode, seeds, overrides)["best"]))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=serve, args=(w,)) for w in workers]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - started, best


def load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def wall_times(args) -> None:
    overrides = {"model": args.model, "epochs": args.epochs, "batch_size": args.batch_size,
                 "train_subset": args.train_subset}
    names = args.configs
    pool: dict[tuple[int, bool], list[Worker]] = {}
    for name in ["solo", *names]:
        for kind in set(CONFIGURATIONS[name][0]):
            needed = CONFIGURATIONS[name][0].count(kind)
            pool.setdefault(kind, [])
            while len(pool[kind]) < needed:
                pool[kind].append(Worker(*kind, data=args.data))
    warm = {**overrides, "epochs": 1, "train_subset": 1280, "test_subset": 1000}
    for workers in pool.values():
        for w in workers:
            w.run("solo", [0], warm)
            w.run("stacked", list(SEEDS), warm)
    print(f"torch {torch.__version__}, {os.cpu_count()} cores; {args.model}, batch {args.batch_size}, "
          f"{args.epochs} epochs, {args.train_subset or 'all'} training images; {args.repeats} repeats", flush=True)

    def measure(name: str) -> dict:
        kinds, jobs = CONFIGURATIONS[name]
        used = {kind: iter(pool[kind]) for kind in set(kinds)}
        load_before = load_average()
        wall, best = run_configuration([next(used[kind]) for kind in kinds], jobs, overrides)
        print(f"    {name:<19} {wall:7.2f} s  load {load_before:4.2f}  best acc "
              + " ".join(f"seed {s} {a * 100:.2f}%" for s, a in sorted(best.items())), flush=True)
        return {"wall": wall, "best": best, "load": load_before}

    results: dict[str, list[tuple[dict, dict]]] = {name: [] for name in names}  # (run, its paired solo run)
    for r in range(args.repeats):
        print(f"  repeat {r}", flush=True)
        for name in names[r % len(names):] + names[:r % len(names)]:
            if r % 2 == 0:
                solo = measure("solo")
                results[name].append((measure(name), solo))
            else:
                run = measure(name)
                results[name].append((run, measure("solo")))
    for workers in pool.values():
        for w in workers:
            w.proc.stdin.close()
            w.proc.wait()

    reference = None
    if "sequential" in results:
        reference = statistics.mean(statistics.mean(run["best"][s] for s in SEEDS) for run, _ in results["sequential"])
    print()
    header = (f"{'configuration':<19} {'wall s':>7} {'solo s':>7} {'x solo':>7}  {'per-repeat x solo':<22} "
              f"{'load 1-min':<16} {'mean best acc':>13} {'vs one by one':>13}")
    print(header)
    print("-" * len(header))
    for name, pairs in results.items():
        ratios = [run["wall"] / solo["wall"] for run, solo in pairs]
        loads = [run["load"] for pair in pairs for run in pair]
        accs = [statistics.mean(run["best"].values()) for run, _ in pairs]
        diff = f"{(statistics.mean(accs) - reference) * 100:+.3f} pt" if reference is not None else ""
        print(f"{name:<19} {statistics.median(run['wall'] for run, _ in pairs):7.2f} "
              f"{statistics.median(solo['wall'] for _, solo in pairs):7.2f} {statistics.median(ratios):6.2f}x  "
              f"{', '.join(f'{x:.2f}' for x in ratios):<22} "
              f"{statistics.median(loads):4.2f} ({min(loads):.1f}-{max(loads):.1f}) "
              f"{statistics.mean(accs) * 100:12.2f}% {diff:>13}")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_times(args) -> None:
    """Per training step on fixed batches: one seed alone, the stacked group, the group under vmap."""
    from torch.func import functional_call, stack_module_state, vmap
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    configs = [resolve({"model": args.model, "batch_size": args.batch_size, "seed": s}) for s in SEEDS]
    k, batch = len(configs), args.batch_size
    images = torch.randint(256, (k, batch, *DATASETS[configs[0].dataset].shape), dtype=torch.uint8, device=device)
    y = torch.randint(10, (k, batch), device=device)
    normalize = normalizer(configs[0].normalize, DATASETS[configs[0].dataset].channels, device)

    models = []
    for config in configs:
        torch.manual_seed(config.seed)
        models.append(build_model(config.model).to(device))
    convnet = is_convnet(models[0])
    layout = torch.channels_last if convnet else torch.contiguous_format
    alone = copy.deepcopy(models[0]).to(memory_format=layout)
    alone_optimizer = make_optimizer(configs[0], alone.parameters())
    x_alone = normalize(images[0]).contiguous(memory_format=layout)

    group = SeedGroup(configs, load(configs[0].dataset, args.data, device), device)
    x_group = group.batch([normalize(part) for part in images])

    params, buffers = stack_module_state(models)
    skeleton = copy.deepcopy(models[0]).to("meta")
    forward = vmap(lambda p, b, xb: functional_call(skeleton, (p, b), (xb,)))
    vmap_optimizer = make_optimizer(configs[0], params.values())
    x_vmap = normalize(images)  # (K, B, C, H, W)

    def step_alone():
        loss = F.cross_entropy(alone(x_alone), y[0])
        alone_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        alone_optimizer.step()

    def stacked_step(out, optimizer):
        loss = F.cross_entropy(out.flatten(0, 1), y.flatten(), reduction="none").view(k, -1).mean(1).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    steps = {"1 seed alone": step_alone,
             f"{k} seeds stacked": lambda: stacked_step(group.logits(x_group), group.optimizer),
             f"{k} seeds vmap": lambda: stacked_step(forward(params, buffers, x_vmap), vmap_optimizer)}
    times: dict[str, list[float]] = {name: [] for name in steps}
    for fn in steps.values():
        for _ in range(10):
            fn()
    for r in range(args.repeats):
        for name in (list(steps) if r % 2 == 0 else list(steps)[::-1]):
            synchronize(device)
            started = time.perf_counter()
            for _ in range(args.step_count):
                steps[name]()
            synchronize(device)
            times[name].append((time.perf_counter() - started) / args.step_count)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} thread(s)"
    print(f"{args.model}, batch {batch}, {where}, {args.repeats} x {args.step_count} steps, "
          f"load {load_average():.2f}")
    base = statistics.median(times["1 seed alone"])
    for name, ts in times.items():
        print(f"  {name:<16} {statistics.median(ts) * 1e6:8.0f} us/step  {statistics.median(ts) / base:5.2f}x")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="mnist-3fc-2bn-51k")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--train-subset", type=int, help="train on the first N images (default all 60,000)")
    p.add_argument("--repeats", type=int, default=3)
    others = [name for name in CONFIGURATIONS if name != "solo"]
    p.add_argument("--configs", nargs="+", default=others, choices=others)
    p.add_argument("--steps", action="store_true", help="time one training step instead (stacked vs vmap)")
    p.add_argument("--step-count", type=int, default=200)
    p.add_argument("--threads", type=int, default=1, help="CPU threads for --steps")
    p.add_argument("--device", default="cpu", help="device for --steps (cuda where there is one)")
    p.add_argument("--data", default=os.environ.get("ZOOLAB_DATA_DIR", "../shared/data"))
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.data = str(Path(args.data).resolve())
    if args.child:
        child(args)
    elif args.steps:
        step_times(args)
    else:
        wall_times(args)


if __name__ == "__main__":
    main()
