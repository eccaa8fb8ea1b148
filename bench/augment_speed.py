"""Images per second of trainer.augment's batched augmentations vs torchvision's per-image PIL pipeline.

Each augment runs on a batch of 64 random uint8 images, MNIST-shaped (1x28x28) and
CIFAR-shaped (3x32x32), on the CPU (one thread) and on CUDA when there is one. The
reference is the same augmentation as torchvision transforms applied to PIL images one
by one, then PILToTensor and a stack, as a Dataset + DataLoader worker would do it.
Prints figures only.

    python -m bench.augment_speed      (from the repository root)
"""

import time

import torch
import torchvision.transforms as T
import torchvision.transforms.functional as TF

from trainer.augment import AUGMENTS, augment_batch

BATCH_SIZE = 64
SHAPES = {"mnist": (1, 28, 28), "cifar": (3, 32, 32)}
MIN_SECONDS = 0.5


def pil_pipeline(name: str, size: int) -> T.Compose:
    augment = {
        "none": [],
        "mnist-notes": [
            T.RandomChoice(
                [
                    T.GaussianBlur(kernel_size=5, sigma=0.3),
                    T.RandomRotation(degrees=10),
                    T.RandomCrop(size, padding=1, padding_mode="reflect"),
                ]
            )
        ],
        "autoaugment": [T.AutoAugment(T.AutoAugmentPolicy.CIFAR10)],
        "flip-crop": [T.RandomCrop(size, padding=4), T.RandomHorizontalFlip()],
    }[name]
    return T.Compose([*augment, T.PILToTensor()])


def images_per_second(step, sync=lambda: None) -> float:
    step()
    sync()
    calls, start = 0, time.perf_counter()
    while calls < 3 or time.perf_counter() - start < MIN_SECONDS:
        step()
        calls += 1
    sync()
    return calls * BATCH_SIZE / (time.perf_counter() - start)


def main() -> None:
    torch.set_num_threads(1)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, batch {BATCH_SIZE}, cpu threads {torch.get_num_threads()}")
    if "cuda" in devices:
        print(f"cuda device: {torch.cuda.get_device_name()}")
    print(f"{'augment':<12} {'shape':<6} {'pil img/s':>10} " + " ".join(f"{d + ' img/s':>12} {'ratio':>7}" for d in devices))
    for shape_name, shape in SHAPES.items():
        images = torch.randint(0, 256, (BATCH_SIZE, *shape), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
        pil_images = [TF.to_pil_image(image) for image in images]
        for name in AUGMENTS:
            pipeline = pil_pipeline(name, shape[-1])
            pil_rate = images_per_second(lambda: torch.stack([pipeline(image) for image in pil_images]))
            row = f"{name:<12} {shape_name:<6} {pil_rate:>10.0f} "
            for device in devices:
                batch = images.to(device)
                generator = torch.Generator(device=device).manual_seed(0)
                sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
                rate = images_per_second(lambda: augment_batch(name, batch, generator), sync)
                row += f"{rate:>12.0f} {rate / pil_rate:>6.1f}x "
            print(row.rstrip(), flush=True)


if __name__ == "__main__":
    main()
