"""How a randhet command's process keeps the memory it frees (glibc's malloc, Linux).

By default glibc maps every block above a moving threshold (at most 32 MB) straight from the
operating system and gives freed memory at the top of the heap back. Attacks with EOT run
tensors of ~10 MB and drop them every step, so each step maps them anew and pays a page fault
per 4 KB page: on this project's 2-core machine, PGD-10 with EOT 20 ran 1.3-1.5x faster once
the process kept its freed memory (``benchmarks/attack_speed.py``, README).
:func:`keep_freed_memory` does that for the process: blocks up to 32 MB come from the heap and
freed memory stays there for reuse (the resident size stays at its peak instead of
shrinking). The randhet command line calls it; ``RANDHET_MALLOC=system`` keeps glibc's
defaults.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # bytes: glibc's largest (DEFAULT_MMAP_THRESHOLD_MAX on 64-bit)
TRIM_THRESHOLD = 1 << 30  # bytes of free heap top kept before any is given back


def keep_freed_memory() -> bool:
    """Make this process keep freed memory for reuse (see the module); True where it did, False
    where it does not apply (not glibc, or ``RANDHET_MALLOC=system``)."""
    if os.environ.get("RANDHET_MALLOC", "") == "system" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
