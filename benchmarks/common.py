"""Shared benchmark utilities: machine description, peak-memory probes, tables, timing."""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from tables import format_table


def machine() -> str:
    cpu = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU"
    return (
        f"{cpu}, {os.cpu_count()} cores ({torch.get_num_threads()} torch threads){gpu}; "
        f"Python {platform.python_version()}, torch {torch.__version__}"
    )


class PeakMemory:
    """Peak memory of a block of code.

    On CUDA: torch's allocator peak. On CPU: the process's resident-set high-water mark (VmHWM),
    reset before the block (`/proc/self/clear_refs` = 5), after returning freed heap to the OS
    (malloc_trim) so an earlier, larger run does not hide this one's growth.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.before_mb = 0.0
        self.peak_mb = 0.0

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.before_mb = torch.cuda.memory_allocated() / 2**20
        else:
            _trim()
            Path("/proc/self/clear_refs").write_text("5")
            self.before_mb = _status_mb("VmRSS")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak_mb = torch.cuda.max_memory_allocated() / 2**20
        else:
            self.peak_mb = _status_mb("VmHWM")

    @property
    def growth_mb(self) -> float:
        return self.peak_mb - self.before_mb


def _status_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{key} not in /proc/self/status")


def _trim() -> None:
    with contextlib.suppress(OSError):  # not glibc: nothing to trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def time_call(fn: Callable[[], object], repeats: int, device: torch.device, warmup: int = 1) -> list[float]:
    """Wall-clock seconds of `fn()` over `repeats` runs after `warmup` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def median_ms(times: list[float]) -> float:
    return 1000 * statistics.median(times)


def percentile_ms(times: list[float], q: float) -> float:
    ordered = sorted(times)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return 1000 * ordered[index]


def print_table(title: str, header: list[str], rows: list[list[object]]) -> None:
    print("\n" + format_table(title, header, rows))
