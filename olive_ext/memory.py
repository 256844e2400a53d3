"""Peak resident memory of this process, and resetting it so that each phase is measured on its own.

Light on purpose (standard library only): the evaluation worker imports it before loading a model.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import sys
from pathlib import Path


def peak_rss_mb() -> float | None:
    """This process's peak resident memory in MiB (0.1 precision): VmHWM on Linux, else getrusage's ru_maxrss.

    VmHWM starts fresh at exec and can be reset (:func:`reset_peak_rss`); ru_maxrss cannot, and Linux
    carries it over from the parent's image before exec. None where neither can be read.
    """
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    try:
        import resource  # not on Windows
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # bytes on macOS, KiB elsewhere
    return round(peak / (2**20 if sys.platform == "darwin" else 1024), 1)


def reset_peak_rss() -> None:
    """Reset VmHWM so that the next peak is measured on its own (Linux >= 4.0; elsewhere nothing happens)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def release_freed_memory() -> None:
    """Collect garbage and hand the C heap's free pages back to the system (glibc's ``malloc_trim``).

    A model released by Python leaves its pages in the allocator's free lists (RSS unchanged) until
    ``malloc_trim``; the next load then starts from a lower RSS. Elsewhere than glibc only ``gc.collect``.
    """
    gc.collect()
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)


def available_mb() -> float | None:
    """Memory the system can give without swapping (``MemAvailable``, MiB), or None where it cannot be read."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    return None
