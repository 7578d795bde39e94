"""The command line's process keeps freed memory for reuse; RANDHET_MALLOC=system opts out."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from randhet import allocator

# two 12 MB blocks allocated, touched and freed ten times: glibc's defaults give the freed
# heap top back each time, so every cycle page-faults its 24 MB in again
PROBE = """
import ctypes, resource
from randhet.allocator import keep_freed_memory
kept = keep_freed_memory()
def cycle():
    a = ctypes.create_string_buffer(12 << 20)
    b = ctypes.create_string_buffer(12 << 20)
    del a, b
cycle()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    cycle()
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _probe(**env: str) -> tuple[bool, int]:
    base = {k: v for k, v in os.environ.items() if k != "RANDHET_MALLOC"}
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         check=True, env={**base, **env}).stdout.split()
    return out[0] == "True", int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux")
def test_kept_memory_is_reused_without_page_faults_and_system_opts_out(monkeypatch) -> None:
    kept, faults = _probe()
    assert kept and faults < 100
    kept, faults = _probe(RANDHET_MALLOC="system")
    assert not kept and faults > 10 * (24 << 20) // 4096 // 2  # at least half the pages again
    monkeypatch.setenv("RANDHET_MALLOC", "system")
    assert allocator.keep_freed_memory() is False
