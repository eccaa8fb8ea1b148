"""Batched data augmentation on the batch's own device (CPU or CUDA).

The trainer keeps a whole dataset on the device as one uint8 tensor and slices batches
by index, so augmentation has to work on a batch tensor, not on PIL images one by one.
`augment_batch(name, images, generator)` takes a uint8 (N, C, H, W) batch and returns one
of the same shape, dtype and device. Each image still gets its own random choice, as a
per-sample torchvision pipeline would give it, and every random number comes from
`generator` (which lives on the batch's device), so one seed gives one result.

    augmented = augment_batch("flip-crop", images, torch.Generator(images.device).manual_seed(0))

Names in AUGMENTS:
  none         the input, unchanged.
  mnist-notes  per image one of GaussianBlur(5, sigma=0.3) (separable; a rare pixel +-1 off
               torchvision's from float rounding), RandomRotation(10) (nearest,
               fill 0) or RandomCrop(size, padding=1, padding_mode="reflect").
  autoaugment  torchvision's AutoAugment(AutoAugmentPolicy.CIFAR10) per image (tensor
               semantics: nearest interpolation, fill 0).
  flip-crop    RandomCrop(size, padding=4) with zero padding, then RandomHorizontalFlip().
The crops keep the input's own H x W (28 x 28 for MNIST, 32 x 32 for CIFAR).

Test: python -m pytest tests/test_augment.py -q      Time: python -m bench.augment_speed
"""

import functools
import math

import torch
import torch.nn.functional as nnf
import torchvision.transforms.functional as TF
import torchvision.transforms.v2.functional as TF2
from torch import Tensor
from torchvision.transforms import AutoAugment, AutoAugmentPolicy, InterpolationMode

from trainer.datasets import AUGMENTS  # names, and the channels each fits

BLUR, ROTATE, CROP = range(3)  # the mnist-notes choices, drawn uniformly
BLUR_KERNEL_SIZE = 5
BLUR_SIGMA = 0.3
ROTATE_DEGREES = 10.0
MNIST_CROP_PADDING = 1
CIFAR_CROP_PADDING = 4


def augment_batch(name: str, images: Tensor, generator: torch.Generator) -> Tensor:
    """Augment a uint8 (N, C, H, W) batch on its device; randomness from `generator` only."""
    if name not in AUGMENTS:
        raise ValueError(f"unknown augment {name!r}; valid names: {', '.join(AUGMENTS)}")
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(f"expected a uint8 (N, C, H, W) batch, got {images.dtype} of shape {tuple(images.shape)}")
    if name == "none":
        return images
    if name == "mnist-notes":
        return _mnist_notes(images, generator)
    if name == "autoaugment":
        return _autoaugment(images, generator)
    return _flip_crop(images, generator)


def _groups(codes: Tensor, num_codes: int) -> list[tuple[int, Tensor]]:
    """(code, indices of the images with that code) for each code present, indices on codes' device."""
    order = torch.argsort(codes, stable=True)
    counts = torch.bincount(codes, minlength=num_codes).tolist()  # the one device sync point per call
    return [(code, idx) for code, idx in enumerate(order.split(counts)) if idx.numel()]


def _crop(padded: Tensor, offsets: Tensor, height: int, width: int, flip: Tensor | None = None) -> Tensor:
    """Per-image height x width windows of `padded` at (row, col) `offsets` (N, 2), optionally mirrored.

    One gather along the flattened pixels: output pixel (r, col) of image i reads flat position
    (offset_row + r) * padded_width + offset_col + col (col mirrored for flipped images).
    """
    n, c, padded_height, padded_width = padded.shape
    device = padded.device
    cols = torch.arange(width, device=device)
    if flip is None:
        cols = cols.expand(n, width)
    else:
        cols = torch.where(flip[:, None], width - 1 - cols, cols)
    rows = torch.arange(height, device=device) * padded_width
    starts = offsets[:, :1] * padded_width + offsets[:, 1:]  # (N, 1)
    flat = (starts + cols)[:, None, :] + rows[None, :, None]  # (N, height, width)
    flat = flat.view(n, 1, height * width).expand(n, c, height * width)
    return padded.reshape(n, c, padded_height * padded_width).gather(2, flat).view(n, c, height, width)


@functools.lru_cache(maxsize=1)
def _blur_kernel1d() -> tuple[float, ...]:
    """torchvision's 1-D Gaussian kernel (float32 values) for GaussianBlur(5, sigma=0.3)."""
    half = (BLUR_KERNEL_SIZE - 1) * 0.5
    x = torch.linspace(-half, half, BLUR_KERNEL_SIZE)
    kernel1d = torch.exp(-0.5 * (x / BLUR_SIGMA).pow(2))
    return tuple((kernel1d / kernel1d.sum()).tolist())


def _gaussian_blur(images: Tensor) -> Tensor:
    """torchvision's gaussian_blur(kernel 5, sigma 0.3): reflect padding, float32, round back.

    Done as the separable kernel over shifted slices (a vertical then a horizontal 5-tap pass)
    instead of conv2d: conv2d goes through oneDNN, which is slow for small batches whose size
    changes every call. Float summation order differs from the 2-D convolution, so a pixel can
    land +-1 from torchvision's after rounding.
    """
    _, _, h, w = images.shape
    kernel = _blur_kernel1d()
    pad = BLUR_KERNEL_SIZE // 2
    padded = nnf.pad(images.float(), (pad, pad, pad, pad), mode="reflect")
    rows = padded[:, :, 0:h, :] * kernel[0]
    for i in range(1, BLUR_KERNEL_SIZE):
        rows.add_(padded[:, :, i : i + h, :], alpha=kernel[i])
    out = rows[:, :, :, 0:w] * kernel[0]
    for j in range(1, BLUR_KERNEL_SIZE):
        out.add_(rows[:, :, :, j : j + w], alpha=kernel[j])
    return out.round_().clamp_(0, 255).to(torch.uint8)


@functools.lru_cache(maxsize=8)
def _pixel_centres(height: int, width: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """affine_grid's base coordinates (align_corners=False): x as (1, 1, W, 1), y as (1, H, 1, 1)."""
    xs = (torch.arange(width, dtype=torch.float32, device=device) * 2 + 1) / width - 1
    ys = (torch.arange(height, dtype=torch.float32, device=device) * 2 + 1) / height - 1
    return xs.view(1, 1, width, 1), ys.view(1, height, 1, 1)


def _rotate(images: Tensor, angles_degrees: Tensor) -> Tensor:
    """Rotate each image about its centre by its own angle (counter-clockwise positive), nearest, fill 0."""
    n, _, h, w = images.shape
    radians = angles_degrees.to(device=images.device, dtype=torch.float32) * (math.pi / 180.0)
    cos, sin = torch.cos(radians), torch.sin(radians)
    # torchvision's inverse matrix in centred pixel units, rescaled to grid_sample's [-1, 1] units,
    # applied in closed form (what affine_grid computes, without its batched matmul):
    # grid[..., 0] = cos * x - sin * (h / w) * y,  grid[..., 1] = sin * (w / h) * x + cos * y.
    x_coefs = torch.stack([cos, sin * (w / h)], 1).view(n, 1, 1, 2)
    y_coefs = torch.stack([-(sin * (h / w)), cos], 1).view(n, 1, 1, 2)
    xs, ys = _pixel_centres(h, w, images.device)
    grid = x_coefs * xs + y_coefs * ys  # (N, H, W, 2)
    rotated = nnf.grid_sample(images.float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return rotated.to(torch.uint8)


def _mnist_notes(images: Tensor, generator: torch.Generator, choice: int | None = None) -> Tensor:
    """Per image one of blur / rotate / reflect-crop; `choice` forces one of them (for tests)."""
    n, _, h, w = images.shape
    device = images.device
    choices = torch.randint(3, (n,), generator=generator, device=device)
    angles = (torch.rand(n, generator=generator, device=device) * 2 - 1) * ROTATE_DEGREES
    offsets = torch.randint(2 * MNIST_CROP_PADDING + 1, (n, 2), generator=generator, device=device)
    if choice is not None:
        choices.fill_(choice)
    # Each group's result is computed on an index_select-ed copy (cheaper than advanced indexing);
    # the results, concatenated in group order, are put back into batch order with one
    # index_select by the inverse permutation (cheaper than an index_copy_ per group).
    groups = _groups(choices, 3)
    if not groups:  # an empty batch
        return torch.empty_like(images)
    parts = []
    for code, idx in groups:
        part = images.index_select(0, idx)
        if code == BLUR:
            parts.append(_gaussian_blur(part))
        elif code == ROTATE:
            parts.append(_rotate(part, angles.index_select(0, idx)))
        else:
            padded = nnf.pad(part, (MNIST_CROP_PADDING,) * 4, mode="reflect")
            parts.append(_crop(padded, offsets.index_select(0, idx), h, w))
    order = torch.cat([idx for _, idx in groups])
    inverse = torch.empty_like(order).scatter_(0, order, torch.arange(n, device=device))
    return torch.cat(parts).index_select(0, inverse)


def _flip_crop(images: Tensor, generator: torch.Generator) -> Tensor:
    """RandomCrop(size, padding=4) with zeros, then a horizontal flip with p=0.5, in one gather."""
    n, _, h, w = images.shape
    device = images.device
    offsets = torch.randint(2 * CIFAR_CROP_PADDING + 1, (n, 2), generator=generator, device=device)
    flip = torch.rand(n, generator=generator, device=device) < 0.5
    padded = nnf.pad(images, (CIFAR_CROP_PADDING,) * 4)
    return _crop(padded, offsets, h, w, flip)


def _apply_op(images: Tensor, op_name: str, magnitude: float) -> Tensor:
    """torchvision.transforms.autoaugment._apply_op on a batch, nearest interpolation and fill 0."""
    nearest = InterpolationMode.NEAREST
    if op_name == "ShearX":
        shear = [math.degrees(math.atan(magnitude)), 0.0]
        return TF.affine(images, 0.0, [0, 0], 1.0, shear, interpolation=nearest, center=[0, 0])
    if op_name == "ShearY":
        shear = [0.0, math.degrees(math.atan(magnitude))]
        return TF.affine(images, 0.0, [0, 0], 1.0, shear, interpolation=nearest, center=[0, 0])
    if op_name == "TranslateX":
        return TF.affine(images, 0.0, [int(magnitude), 0], 1.0, [0.0, 0.0], interpolation=nearest)
    if op_name == "TranslateY":
        return TF.affine(images, 0.0, [0, int(magnitude)], 1.0, [0.0, 0.0], interpolation=nearest)
    if op_name == "Rotate":
        return TF.rotate(images, magnitude, interpolation=nearest)
    if op_name == "Brightness":
        return TF.adjust_brightness(images, 1.0 + magnitude)
    if op_name == "Color":
        return TF.adjust_saturation(images, 1.0 + magnitude)
    if op_name == "Contrast":
        return TF.adjust_contrast(images, 1.0 + magnitude)
    if op_name == "Sharpness":
        return TF.adjust_sharpness(images, 1.0 + magnitude)
    if op_name == "Posterize":
        return TF.posterize(images, int(magnitude))
    if op_name == "Solarize":
        return TF.solarize(images, magnitude)
    if op_name == "AutoContrast":
        return TF.autocontrast(images)
    if op_name == "Equalize":
        # v1's equalize loops over the batch in Python; v2's is vectorised and gives equal output.
        return TF2.equalize(images)
    if op_name == "Invert":
        return TF.invert(images)
    raise ValueError(f"unknown AutoAugment op {op_name!r}")


@functools.lru_cache(maxsize=8)
def _cifar10_policy_table(height: int, width: int):
    """The CIFAR10 sub-policies as lookup tables over distinct (op, signed magnitude) outcomes.

    Returns (outcomes, outcome_ids, probabilities): outcomes[0] is "not applied";
    outcome_ids[policy, step, sign] indexes outcomes (sign 0 negates a signed magnitude, as
    torchvision does); probabilities[policy, step] is the step's probability.
    """
    auto = AutoAugment(AutoAugmentPolicy.CIFAR10)
    op_meta = auto._augmentation_space(10, (height, width))
    outcomes: list[tuple[str, float] | None] = [None]
    outcome_ids, probabilities = [], []
    for policy in auto.policies:
        ids, probs = [], []
        for op_name, p, magnitude_id in policy:
            magnitudes, signed = op_meta[op_name]
            magnitude = float(magnitudes[magnitude_id].item()) if magnitude_id is not None else 0.0
            per_sign = []
            for sign in (0, 1):
                outcome = (op_name, -magnitude if signed and sign == 0 else magnitude)
                if outcome not in outcomes:
                    outcomes.append(outcome)
                per_sign.append(outcomes.index(outcome))
            ids.append(per_sign)
            probs.append(p)
        outcome_ids.append(ids)
        probabilities.append(probs)
    return outcomes, torch.tensor(outcome_ids), torch.tensor(probabilities, dtype=torch.float32)


def _autoaugment(images: Tensor, generator: torch.Generator, policy: int | None = None) -> Tensor:
    """AutoAugment(CIFAR10) per image; images sharing an outcome at a step go through one call.

    `policy` forces every image onto one sub-policy (for tests).
    """
    n, _, h, w = images.shape
    device = images.device
    outcomes, outcome_ids, probabilities = _cifar10_policy_table(h, w)
    num_policies, num_steps = probabilities.shape
    policy_ids = torch.randint(num_policies, (n,), generator=generator, device=device)
    draws = torch.rand(n, num_steps, generator=generator, device=device)
    signs = torch.randint(2, (n, num_steps), generator=generator, device=device)
    if policy is not None:
        policy_ids.fill_(policy)
    outcome_ids, probabilities = outcome_ids.to(device), probabilities.to(device)
    out = images.clone()
    for step in range(num_steps):
        applied = draws[:, step] <= probabilities[policy_ids, step]
        codes = torch.where(applied, outcome_ids[policy_ids, step, signs[:, step]], 0)
        for code, idx in _groups(codes, len(outcomes)):
            if code != 0:
                out[idx] = _apply_op(out[idx], *outcomes[code])
    return out
