"""`zoolab data [DATASET ...]`: the datasets a command needs, checked before it starts.
`make run` runs it for the zoo's datasets and `make test` for all of them, so that a missing
dataset stops the command at once with one message, not with failed runs or dozens of failed
tests.

The data folder is the one the data rule picks (app/settings.py, `choose_data_dir`):
ZOOLAB_DATA_DIR if set; else ./data; else a workspace copy ../shared/data when it exists.
Each dataset is looked for there in its published layouts (and Fashion-MNIST also where
Debian installs it; trainer/datafiles.py). Missing ones are fetched once into the data folder
with torchvision's download when ZOOLAB_DOWNLOAD allows it, by `python -m trainer.data
--download` in a child process (this one stays torch-free). When downloads are off or fail,
the message names the missing files, where they were looked for and how to provide them.

    zoolab data                    # every dataset; exit status 0 when all are present
    zoolab data mnist cifar10
"""

import subprocess
import sys
from pathlib import Path

from app.settings import Settings, data_dir_places, get_settings
from trainer.datafiles import find, places
from trainer.datasets import DATASETS, get_dataset


def missing(datasets: list[str], data_dir: Path) -> list[str]:
    return [name for name in datasets if find(name, data_dir) is None]


def check(datasets: list[str] | None = None, settings: Settings | None = None) -> tuple[bool, str]:
    """(all present, a report): found where, or one message on what is missing and what to do."""
    settings = settings or get_settings()
    datasets = datasets or list(DATASETS)
    for name in datasets:
        get_dataset(name)  # an unknown name is a ValueError that lists the known ones
    absent = missing(datasets, settings.data_dir)
    if absent and settings.download:
        subprocess.run([sys.executable, "-m", "trainer.data", str(settings.data_dir), "--download", *absent])
        absent = missing(datasets, settings.data_dir)
    if not absent:
        return True, "zoolab: datasets found: " + ", ".join(
            f"{name} in {find(name, settings.data_dir).folder}" for name in datasets)
    return False, explain(absent, settings)


def explain(absent: list[str], settings: Settings) -> str:
    data_dir = settings.data_dir
    why = ("fetching them failed (torchvision's messages above; is there a network?)" if settings.download
           else "downloads are off (ZOOLAB_DOWNLOAD=false)")
    lines = [f"zoolab: missing dataset{'s' * (len(absent) > 1)} {', '.join(absent)}; {why}.", "",
             f"The data folder is {data_dir}, by the data rule "
             "(ZOOLAB_DATA_DIR if set; else ./data; else ../shared/data when it exists):"]
    if "data_dir" in settings.model_fields_set:
        lines.append(f"  1. ZOOLAB_DATA_DIR  {data_dir}")
    else:
        local, workspace = data_dir_places()
        lines += ["  1. ZOOLAB_DATA_DIR  not set"] + [
            f"  {i}. {label:15} {folder}{'' if folder.exists() else ' (does not exist)'}"
            for i, (label, folder) in enumerate((("./data", local), ("../shared/data", workspace)), 2)]
    lines += ["", "Looked for, in this order:"]
    for name in absent:
        lines += [f"  {name}: " + "; or ".join(
            f"{', '.join(p.missing())}{' (or .gz)' * p.gzip_ok} in {p.folder}" for p in places(name, data_dir))]
    lines += ["", "To provide them, one of:",
              f"  - run it again where the network works, with downloads allowed (ZOOLAB_DOWNLOAD unset or "
              f"true): they are fetched once into {data_dir}",
              f"  - copy the files into {data_dir} as listed above",
              "  - set ZOOLAB_DATA_DIR to a folder that holds them"]
    if "fashion-mnist" in absent:
        lines.append("  - for fashion-mnist: apt-get install dataset-fashion-mnist")
    return "\n".join(lines)
