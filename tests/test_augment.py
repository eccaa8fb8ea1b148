"""Tests for trainer/augment.py: batched augmentations against torchvision's per-image ones."""

import pytest
import torch
import torch.nn.functional as nnf
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from torchvision.transforms import InterpolationMode
from torchvision.transforms.autoaugment import _apply_op as tv_apply_op

from trainer.augment import (
    AUGMENTS,
    BLUR,
    CROP,
    ROTATE,
    _apply_op,
    _autoaugment,
    _cifar10_policy_table,
    _mnist_notes,
    _rotate,
    augment_batch,
)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
SHAPES = {"mnist": (1, 28, 28), "cifar": (3, 32, 32)}


def random_images(n, shape, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, *shape), dtype=torch.uint8, generator=g).to(device)


def seeded(device, seed=0):
    return torch.Generator(device=device).manual_seed(seed)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.parametrize("name", AUGMENTS)
def test_shape_dtype_device_and_determinism(name, shape, device):
    images = random_images(16, shape, device)
    first = augment_batch(name, images, seeded(device, 1))
    assert first.shape == images.shape and first.dtype == torch.uint8 and first.device == images.device
    assert torch.equal(first, augment_batch(name, images, seeded(device, 1)))
    if name != "none":
        assert not torch.equal(first, augment_batch(name, images, seeded(device, 2)))


def test_none_returns_input():
    images = random_images(4, SHAPES["mnist"])
    assert augment_batch("none", images, seeded("cpu")) is images


@pytest.mark.parametrize("name", [n for n in AUGMENTS if n != "none"])
def test_each_image_draws_its_own_choice(name):
    images = random_images(1, SHAPES["cifar"]).expand(64, -1, -1, -1).contiguous()
    out = augment_batch(name, images, seeded("cpu"))
    assert len(torch.unique(out.flatten(1), dim=0)) >= 5


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="flip-crop"):
        augment_batch("mixup", random_images(2, SHAPES["mnist"]), seeded("cpu"))


def test_blur_matches_torchvision():
    images = random_images(8, SHAPES["mnist"])
    out = _mnist_notes(images, seeded("cpu"), choice=BLUR)
    blur = T.GaussianBlur(kernel_size=5, sigma=0.3)
    for image, blurred in zip(images, out):
        assert (blurred.int() - blur(image).int()).abs().max() <= 1


def test_crop_is_a_window_of_the_reflect_padded_image():
    images = random_images(16, SHAPES["mnist"])
    out = _mnist_notes(images, seeded("cpu"), choice=CROP)
    offsets_seen = set()
    for image, cropped in zip(images, out):
        padded = TF.pad(image, 1, padding_mode="reflect")
        windows = [(i, j) for i in range(3) for j in range(3) if torch.equal(TF.crop(padded, i, j, 28, 28), cropped)]
        assert windows
        offsets_seen.update(windows)
    assert len(offsets_seen) > 1


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 20, 28)], ids=["square", "wide"])
def test_rotation_matches_torchvision(shape):
    angles = torch.tensor([10.0, -10.0, 7.3, -2.5, 0.0, 90.0])
    images = random_images(len(angles), shape)
    out = _rotate(images, angles)
    for image, angle, rotated in zip(images, angles.tolist(), out):
        expected = TF.rotate(image, angle, interpolation=InterpolationMode.NEAREST, fill=[0.0] * shape[0])
        assert (rotated == expected).float().mean() >= 0.97, angle


def test_mnist_rotation_choice_rotates():
    images = random_images(8, SHAPES["mnist"])
    out = _mnist_notes(images, seeded("cpu"), choice=ROTATE)
    assert (out == 0).float().mean() > (images == 0).float().mean()  # corners filled with 0


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_every_autoaugment_outcome_matches_torchvision_apply_op(shape):
    outcomes = _cifar10_policy_table(*shape[1:])[0][1:]
    images = random_images(3, shape)
    images[1] //= 4  # a low-contrast image exercises autocontrast and equalize
    for op_name, magnitude in outcomes:
        out = _apply_op(images, op_name, magnitude)
        for image, got in zip(images, out):
            expected = tv_apply_op(image, op_name, magnitude, interpolation=InterpolationMode.NEAREST, fill=None)
            assert torch.equal(got, expected), (op_name, magnitude)


def test_forced_single_op_policy_matches_torchvision():
    # Sub-policy 14 is (Solarize p=0.5 bin 2, Invert p=0.0): each image is solarized or left alone.
    images = random_images(32, SHAPES["cifar"])
    out = _autoaugment(images, seeded("cpu"), policy=14)
    solarized = TF.solarize(images, 255.0 * 7 / 9)
    is_solarized = (out == solarized).flatten(1).all(1)
    is_unchanged = (out == images).flatten(1).all(1)
    assert (is_solarized | is_unchanged).all()
    assert is_solarized.any() and is_unchanged.any()


def test_autoaugment_changes_most_images():
    images = random_images(64, SHAPES["cifar"])
    out = augment_batch("autoaugment", images, seeded("cpu"))
    assert out.dtype == torch.uint8
    assert (out != images).flatten(1).any(1).float().mean() >= 0.5


def test_flip_crop_is_a_window_of_the_zero_padded_image_maybe_flipped():
    images = random_images(16, SHAPES["cifar"])
    out = augment_batch("flip-crop", images, seeded("cpu"))
    flips = 0
    for image, got in zip(images, out):
        padded = nnf.pad(image, (4, 4, 4, 4))
        windows = [padded[:, i : i + 32, j : j + 32] for i in range(9) for j in range(9)]
        plain = any(torch.equal(got, w) for w in windows)
        flipped = any(torch.equal(got, w.flip(-1)) for w in windows)
        assert plain or flipped
        flips += flipped and not plain
    assert 0 < flips < 16


@pytest.mark.parametrize("device", DEVICES)
def test_mnist_notes_puts_each_image_back_in_place_with_its_own_draws(device):
    # The draws, in augment order: choice (N), angle (N), crop offset (N, 2).
    n = 40
    images = random_images(n, SHAPES["mnist"], device)
    out = _mnist_notes(images, seeded(device, 3))
    g = seeded(device, 3)
    choices = torch.randint(3, (n,), generator=g, device=device)
    angles = (torch.rand(n, generator=g, device=device) * 2 - 1) * 10.0
    offsets = torch.randint(3, (n, 2), generator=g, device=device)
    assert len(set(choices.tolist())) == 3
    for i in range(n):
        image = images[i : i + 1]
        if choices[i] == BLUR:
            expected = T.GaussianBlur(kernel_size=5, sigma=0.3)(image)
            assert (out[i].int() - expected[0].int()).abs().max() <= 1, i
        elif choices[i] == ROTATE:
            assert torch.equal(out[i : i + 1], _rotate(image, angles[i : i + 1])), i
        else:
            padded = TF.pad(image, 1, padding_mode="reflect")
            top, left = offsets[i].tolist()
            assert torch.equal(out[i : i + 1], TF.crop(padded, top, left, 28, 28)), i


def test_blur_is_exact_on_almost_every_pixel():
    cifar_planes = random_images(16, SHAPES["cifar"], seed=5).flatten(0, 1)[:, None, :28, :28]
    images = torch.cat([random_images(64, SHAPES["mnist"], seed=4), cifar_planes])
    out = _mnist_notes(images, seeded("cpu"), choice=BLUR)
    expected = T.GaussianBlur(kernel_size=5, sigma=0.3)(images)
    assert (out.int() - expected.int()).abs().max() <= 1
    assert (out == expected).float().mean() >= 0.9999
