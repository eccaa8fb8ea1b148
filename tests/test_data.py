"""Loading the real datasets (trainer/data.py) from files a test damages: a damaged file fails
by its name, a dataset that failed to load is never kept, a changed file is read again.

    ZOOLAB_DATA_DIR=/work/shared/data .venv/bin/python -m pytest tests/test_data.py -q
"""

from pathlib import Path

import pytest
import torch

from tests.stack import DATA_DIR
from trainer.data import DatasetError, load

CPU = torch.device("cpu")


def linked(tmp_path: Path, folder: str) -> Path:
    """`tmp_path/folder`, holding links to the real files of the shared data folder."""
    (tmp_path / folder).mkdir(parents=True)
    for f in (Path(DATA_DIR) / folder).iterdir():
        (tmp_path / folder / f.name).symlink_to(f)
    return tmp_path / folder


def damaged(link: Path, offset: int, value: int) -> bytes:
    """Replace the link by a copy of its file with the byte at `offset` set to `value`; returns the original."""
    original = link.read_bytes()
    link.unlink()
    link.write_bytes(original[:offset] + bytes([value]) + original[offset + 1:])
    return original


def test_a_label_out_of_range_fails_naming_the_file_and_nothing_is_kept(tmp_path):
    labels = linked(tmp_path, "MNIST/raw") / "t10k-labels-idx1-ubyte"
    good = load("mnist", tmp_path, CPU)  # loaded and kept ...
    original = damaged(labels, 8 + 123, 200)  # (an IDX label file: 8 header bytes, then one byte per label)
    for _ in range(2):  # ... until its file changes; and the damaged one is not kept either
        with pytest.raises(DatasetError) as failed:
            load("mnist", tmp_path, CPU)
        assert str(failed.value).startswith(f"{labels} is damaged: label 200 at index 123 (1 such) is not a "
                                            "class of mnist (0–9)"), failed.value
    labels.write_bytes(original)  # fixed: read again
    fixed = load("mnist", tmp_path, CPU)
    assert fixed is not good and torch.equal(fixed.test_y, good.test_y)
    assert load("mnist", tmp_path, CPU) is fixed  # unchanged: kept


def test_an_idx_file_of_another_type_fails_naming_the_file(tmp_path):
    images = linked(tmp_path, "MNIST/raw") / "train-images-idx3-ubyte"
    damaged(images, 2, 0x0D)  # type code 0x0D: 4-byte floats, not pixel bytes
    with pytest.raises(DatasetError, match=rf"^{images} is damaged: its header 00000d03 is not that of an IDX"):
        load("mnist", tmp_path, CPU)


def test_a_cifar_label_out_of_range_fails_naming_the_file(tmp_path):
    test_batch = linked(tmp_path, "cifar-10-batches-bin") / "test_batch.bin"
    damaged(test_batch, 3073 * 7, 10)  # the label byte of record 7
    with pytest.raises(DatasetError) as failed:
        load("cifar10", tmp_path, CPU)
    assert str(failed.value).startswith(f"{test_batch} is damaged: label 10 at index 7 (1 such) is not a class "
                                        "of cifar10 (0–9)"), failed.value
