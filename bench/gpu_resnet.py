"""cifar-resnet-6.6m (ResNet-9) on a GPU: epoch seconds, images/s and model FLOP
utilisation (MFU) against the GPU's dense bf16 peak. For a GPU machine; never in CI.

    python -m bench.gpu_resnet                       # 2 epochs, the preset's defaults, eager
    python -m bench.gpu_resnet --compile             # torch.compile; compile time reported apart
    python -m bench.gpu_resnet --device cpu --images 256 --test-images 256 --epochs 1   # syntax check

The model, optimiser, batch source and training step are the worker's own
(trainer/train.py `prepare`): the dataset on the device as uint8, batches sliced by index,
flip-crop augmentation and normalisation on the device, channels_last, bf16 autocast on
CUDA, fused Adam, one-cycle lr; loss and accuracy accumulate on the device and are read
once per epoch (no host sync per batch). FLOPs of one training step
(forward + backward) are counted with torch.utils.flop_counter.FlopCounterMode;
MFU = FLOPs per step x steps / train seconds / peak. The peak comes from --peak-tflops or
from a table of dense bf16 tensor-core peaks by device name (H100 SXM 989 TFLOP/s, ...).
"""

import argparse
import copy
import os
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from trainer.config import resolve
from trainer.data import load
from trainer.train import prepare

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
    p.add_argument("--data", default=os.environ.get("ZOOLAB_DATA_DIR", "data"))
    args = p.parse_args(argv)
    device = torch.device(args.device)
    config = resolve({"model": MODEL, "epochs": args.epochs, "train_subset": args.images,
                      "test_subset": args.test_images, "batch_size": args.batch_size})
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    t0 = time.perf_counter()
    data = load(config.dataset, args.data, device)
    sync(device)
    print(f"{MODEL} on {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}, torch "
          f"{torch.__version__}; dataset on device in {time.perf_counter() - t0:.2f} s", flush=True)
    setup = prepare(config, data, device)  # the worker's own model, optimiser, batches and step
    setup.batches.augment = config.augment
    state, batch_size = setup.state, config.batch_size
    n = len(setup.batches.images)

    # FLOPs of one training step at the training batch size (eager, before any compile);
    # the measuring steps must not train, so the whole state is put back after them.
    initial = copy.deepcopy(state.state_dict())
    inputs, labels = next(iter(setup.batches))
    with FlopCounterMode(display=False) as counter:
        setup.step(inputs, labels)
    flops_per_image = counter.get_total_flops() / batch_size
    print(f"FLOPs per training image (forward + backward): {flops_per_image / 1e9:.3f} GFLOP", flush=True)
    if args.compile:
        setup.forward = torch.compile(state.model)
        t0 = time.perf_counter()
        state.model.train()
        setup.step(inputs, labels)
        sync(device)
        print(f"compile (first training step): {time.perf_counter() - t0:.1f} s", flush=True)
    state.load_state_dict(initial)

    peak = peak_tflops(device, args.peak_tflops)
    print(f"{'epoch':>5} {'train s':>8} {'epoch s':>8} {'img/s':>9} {'TFLOP/s':>8} {'MFU':>6} {'train loss':>10} "
          f"{'train acc':>9} {'test acc':>8}", flush=True)
    for epoch in range(1, config.epochs + 1):
        state.model.train()
        sync(device)
        started = time.perf_counter()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        for inputs, labels in setup.batches:
            out, loss = setup.step(inputs, labels)
            loss_sum += loss.detach() * len(labels)
            correct += (out.argmax(1) == labels).sum()
        train_loss, train_acc = loss_sum.item() / n, correct.item() / n  # the epoch's one sync
        train_seconds = time.perf_counter() - started
        result = setup.evaluate()
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
