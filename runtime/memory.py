"""Allocator settings for NumPy-heavy generated code (opt-in).

Gradient code keeps many large temporaries alive at once. With glibc's default dynamic
thresholds, each new large array is mmap'ed and page-faulted, then trimmed on free, and
the next call faults again; NumPy code with many live temporaries can run several times
slower than the arithmetic. `tune_malloc()` raises the mmap and trim thresholds so that
freed memory is reused. It changes process-wide allocator behaviour, so s2sad never calls
it on its own; benchmarks report numbers with and without it.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3


def tune_malloc(mmap_threshold=256 << 20, trim_threshold=512 << 20) -> bool:
    """Raise glibc's mmap and trim thresholds; returns False where glibc is not present."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        ok1 = libc.mallopt(M_MMAP_THRESHOLD, int(mmap_threshold))
        ok2 = libc.mallopt(M_TRIM_THRESHOLD, int(trim_threshold))
    except (OSError, AttributeError):
        return False
    return bool(ok1 and ok2)
