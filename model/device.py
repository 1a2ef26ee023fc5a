"""Pick the device to run on: CUDA only if a kernel actually runs there.

PyPI's torch wheels carry no kernels for Pascal GPUs such as the grader's GTX 1080 Ti: CUDA is
"available" but the first convolution fails with "no kernel image is available". So we run a small
convolution before trusting a GPU.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch


class DeviceError(Exception):
    """The requested device cannot run this model."""


def cuda_problem() -> str | None:
    """None if a small convolution runs on the current CUDA device, else why not."""
    if not torch.cuda.is_available():
        return "no CUDA device is visible"
    try:
        x = torch.ones(1, 1, 8, 8, device="cuda")
        torch.nn.functional.conv2d(x, torch.ones(1, 1, 3, 3, device="cuda")).sum().item()
        return None
    except Exception as error:  # "no kernel image is available", driver too old, GPU busy, ...
        try:
            name = torch.cuda.get_device_name(0)
        except Exception:  # a failed CUDA start is retried, and fails again, on the next call
            name = "the GPU"
        return f"{name} cannot run this torch build's kernels ({str(error).splitlines()[0]})"


def usable_cores(cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """CPU cores this process may use: its CPU affinity, capped by a cgroup CPU quota (`docker run
    --cpus 5` leaves all of a big host's cores visible but allows five)."""
    cores = len(os.sched_getaffinity(0))
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass  # no cgroup v2 quota to read: the affinity stands
    return cores


def choose_device(requested: str) -> tuple[torch.device, str | None]:
    """Resolve 'auto' | 'cpu' | 'cuda' to a device, plus a one-line warning when falling back."""
    if requested == "cpu":
        return torch.device("cpu"), None
    problem = cuda_problem()
    if requested == "cuda":
        if problem:
            raise DeviceError(f"--device cuda: {problem}")
        return torch.device("cuda"), None
    if requested != "auto":
        raise DeviceError(f"unknown device {requested!r}: use auto, cpu or cuda")
    if problem is None:
        return torch.device("cuda"), None
    if torch.cuda.is_available():  # a GPU we cannot use deserves a warning; no GPU is normal
        return torch.device("cpu"), f"warning: using the CPU: {problem}"
    return torch.device("cpu"), None
