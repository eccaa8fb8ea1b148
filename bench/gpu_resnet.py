"""cifar-resnet-6.6m (ResNet-9) on a GPU: epoch seconds, images/s and model FLOP
utilisation (MFU) against the GPU's dense bf16 peak. For a GPU machine; never in CI.

    python -m bench.gpu_resnet                       # 2 epochs, the preset's defaults, eager
    python -m bench.gpu_resnet --compile             # torch.compile; compile time reported apart
    python -m bench.gpu_resnet --device cpu --images 256 --test-images 256 --epochs 1   # syntax check

The loop is zoolab's (trainer/train.py): the dataset on the device as uint8, batches
sliced by index, flip-crop augmentation and normalisation on the device, channels_last,
bf16 autocast on CUDA, fused Adam, one-cycle lr, loss and accuracy accumulated on the
device and read once per epoch (no host sync per batch). FLOPs of one training step
(forward + backward) are counted with torch.utils.flop_counter.FlopCounterMode;
MFU = FLOPs per step x steps / train seconds / peak. The peak comes from --peak-tflops or
from a table of dense bf16 tensor-core peaks by device name (H100 SXM 989 TFLOP/s, ...).
"""

import argparse
import time

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from trainer.augment import augment_batch
from trainer.config import resolve
from trainer.datasets import DATASETS
from trainer.data import load, normalizer
from trainer.nets import build_model
from trainer.train import evaluate, make_optimizer, make_scheduler

MODEL = "cifar-resnet-6.6m"
# Dense (no sparsity) bf16 tensor-core peaks, TFLOP/s; the first match in the device name wins.
PEAK_BF16_TFLOPS = [
    ("H200", 989.0), ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.0), ("GH200", 989.0),
    ("B200", 2250.0), ("A100", 312.0), ("A800", 312.0), ("L40S", 362.0), ("L40", 181.0), ("L4", 121.0),
    ("A10G", 70.0), ("A10", 125.0), ("RTX 4090", 165.0), ("RTX 3090", 71.0), ("A6000", 155.0),
]


def peak_tflops(device: torch.device, override: float | None) -> float | None:
    if override:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_BF16_TFLOPS if key in name), None)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--images", type=int, help="train on the first N images (default all 50,000)")
    p.add_argument("--test-images", type=int, help="evaluate on the first N test images (default all)")
    p.add_argument("--batch-size", type=int, help="default: the preset's (400)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--peak-tflops", type=float, help="the device's dense bf16 peak, TFLOP/s")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--data", default="../shared/data")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    config = resolve({"model": MODEL, "epochs": args.epochs, "train_subset": args.images,
                      "test_subset": args.test_images, "batch_size": args.batch_size})
    torch.manual_seed(config.seed)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    t0 = time.perf_counter()
    data = load(config.dataset, args.data, device)
    sync(device)
    print(f"{MODEL} on {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}, torch "
          f"{torch.__version__}; dataset on device in {time.perf_counter() - t0:.2f} s", flush=True)
    train_x, train_y = data.train_x[:config.train_subset or None], data.train_y[:config.train_subset or None]
    test_x, test_y = data.test_x[:config.test_subset or None], data.test_y[:config.test_subset or None]
    n, batch_size = len(train_x), config.batch_size
    steps = n // batch_size + (1 if n % batch_size > 1 else 0)
    autocast = device.type == "cuda"

    model = build_model(MODEL).to(device).to(memory_format=torch.channels_last)
    optimizer = make_optimizer(config, model.parameters())
    scheduler = make_scheduler(config, optimizer, steps)
    normalize = normalizer(config.normalize, DATASETS[data.name].channels, device)
    generator = torch.Generator(device).manual_seed(config.seed)
    step_model = model

    def train_step(xb, yb):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            out = step_model(xb)
            loss = F.cross_entropy(out.float(), yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        return out, loss

    # FLOPs of one forward + backward at the training batch size (eager, before any compile).
    xb = normalize(train_x[:batch_size]).contiguous(memory_format=torch.channels_last)
    initial = {k: v.clone() for k, v in model.state_dict().items()}  # measuring steps must not train
    with FlopCounterMode(display=False) as counter:
        train_step(xb, train_y[:batch_size])
    optimizer.zero_grad(set_to_none=True)
    model.load_state_dict(initial)
    flops_per_image = counter.get_total_flops() / batch_size
    print(f"FLOPs per training image (forward + backward): {flops_per_image / 1e9:.3f} GFLOP", flush=True)

    if args.compile:
        step_model = torch.compile(model)
        t0 = time.perf_counter()
        model.train()
        train_step(xb, train_y[:batch_size])
        optimizer.zero_grad(set_to_none=True)
        model.load_state_dict(initial)
        sync(device)
        print(f"compile (first training step): {time.perf_counter() - t0:.1f} s", flush=True)

    peak = peak_tflops(device, args.peak_tflops)
    print(f"{'epoch':>5} {'train s':>8} {'epoch s':>8} {'img/s':>9} {'TFLOP/s':>8} {'MFU':>6} {'train loss':>10} "
          f"{'train acc':>9} {'test acc':>8}", flush=True)
    for epoch in range(1, config.epochs + 1):
        model.train()
        sync(device)
        started = time.perf_counter()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        order = torch.randperm(n, generator=generator, device=device)
        for step in range(steps):
            idx = order[step * batch_size:(step + 1) * batch_size]
            xb = normalize(augment_batch(config.augment, train_x.index_select(0, idx), generator))
            xb = xb.contiguous(memory_format=torch.channels_last)
            yb = train_y.index_select(0, idx)
            out, loss = train_step(xb, yb)
            optimizer.step()
            scheduler.step()
            loss_sum += loss.detach() * len(idx)
            correct += (out.argmax(1) == yb).sum()
        train_loss, train_acc = loss_sum.item() / n, correct.item() / n  # the epoch's one sync
        train_seconds = time.perf_counter() - started
        result = evaluate(model, test_x, test_y, normalize, True, autocast)
        epoch_seconds = time.perf_counter() - started
        tflops = flops_per_image * n / train_seconds / 1e12
        mfu = f"{tflops / peak * 100:5.1f}%" if peak else "   n/a"
        print(f"{epoch:>5} {train_seconds:>8.2f} {epoch_seconds:>8.2f} {n / train_seconds:>9.0f} {tflops:>8.2f} "
              f"{mfu:>6} {train_loss:>10.4f} {train_acc * 100:>8.2f}% {result.acc * 100:>7.2f}%", flush=True)
    if peak is None:
        print("MFU: unknown peak for this device; pass --peak-tflops")
    else:
        print(f"MFU against {peak:.0f} TFLOP/s dense bf16")


if __name__ == "__main__":
    main()
