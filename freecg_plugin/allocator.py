"""glibc's allocator settings for large systems on the CPU.

Above about 10^3 atoms most per-edge tensors are larger than glibc's 32 MiB ``mmap`` threshold:
each call maps them afresh and the OS faults them in page by page, and time per atom doubles from
1,536 to 12,288 atoms (``benchmarks/water_scale.py``). Serving every allocation from the heap and
never returning freed memory to the system makes the next call reuse it (1.3-3.5x faster at 12,288
atoms, time per atom flat), at the price of 1.2-1.6x more peak memory (fragmentation).

Two ways to ask for it: the environment :data:`HEAP_ENVIRONMENT`, set before Python starts (any
program), or :func:`keep_freed_memory` in a process that owns its allocator (``freecg md
--heap-allocator``, ``freecg evaluate --heap-allocator``). Both change the whole process, so the
library never calls it by itself.
"""

from __future__ import annotations

import ctypes

__all__ = ["HEAP_ENVIRONMENT", "keep_freed_memory"]

HEAP_ENVIRONMENT = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(64 * 2**30)}
"""The same settings as environment variables (read by glibc when a program starts)."""

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc's <malloc.h>


def keep_freed_memory() -> None:
    """From now on, serve every allocation of this process from glibc's heap (no ``mmap``) and
    keep freed memory for reuse (never trim the heap).

    Raises:
        RuntimeError: the C library is not glibc (no ``mallopt``), or it refused a setting.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        raise RuntimeError("the heap allocator setting needs glibc's mallopt (Linux); this C library has none") from None
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # a trim threshold of -1 reads as SIZE_MAX: the heap is never trimmed
    if mallopt(_M_MMAP_MAX, 0) != 1 or mallopt(_M_TRIM_THRESHOLD, -1) != 1:
        raise RuntimeError("glibc's mallopt refused the heap allocator settings")
