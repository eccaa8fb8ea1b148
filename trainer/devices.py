"""The devices a worker trains on: which one to use, its name, how much of its memory is in
use, and (on a GPU, where NVML is installed: `pip install nvidia-ml-py`) how busy it is.

    python -m trainer.devices        # what this machine offers
"""

import os
import resource

import torch


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (cuda:{device.index or 0})"
    return f"cpu ({os.cpu_count()} cores)"


def _utilization(device: torch.device) -> float | None:
    try:
        import pynvml  # nvidia-ml-py: optional
        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(torch.cuda._get_nvml_device_index(device))
        return float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
    except Exception:  # not installed, no driver, or no permission: the figure is optional
        return None


def stats(device: torch.device) -> dict:
    """memory_used_bytes / memory_total_bytes: a GPU's (all its processes); on a CPU this
    process's resident memory and the machine's. utilization: GPU busy %, or None."""
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        return {"memory_used_bytes": total - free, "memory_total_bytes": total, "utilization": _utilization(device)}
    with open("/proc/self/statm") as f:
        resident_pages = int(f.read().split()[1])
    page = os.sysconf("SC_PAGE_SIZE")
    return {"memory_used_bytes": resident_pages * page, "memory_total_bytes": page * os.sysconf("SC_PHYS_PAGES"),
            "utilization": None}


def peak_memory_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def default_threads() -> int:
    # Leave a core to the server (and anything else running): measured on a 2-core box
    # (bench/README.md), 2 OpenMP threads collapse 10-50x as soon as another process
    # wants a core (threads spin at barriers while one is descheduled); 1 thread does not.
    return max(1, (os.cpu_count() or 1) - 1)


def cuda_devices(spec: str) -> list[int]:
    """The GPU indices of `--gpus all|0,1,...`; ValueError with the reason if there are none
    or one is not there."""
    if not torch.cuda.is_available():
        raise ValueError("this machine has no CUDA device that torch can use (torch.cuda.is_available() is "
                         "False): start a CPU worker with `zoolab worker` instead")
    count = torch.cuda.device_count()
    if spec == "all":
        return list(range(count))
    try:
        ids = [int(part) for part in spec.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--gpus takes `all` or device numbers like 0,1; gets {spec!r}") from None
    missing = [i for i in ids if not 0 <= i < count]
    if not ids or missing:
        raise ValueError(f"--gpus {spec}: this machine has {count} GPU(s), numbered 0 to {count - 1}")
    return ids


if __name__ == "__main__":
    device = pick_device()
    print(describe(device), stats(device), f"{torch.cuda.device_count()} CUDA device(s)")
