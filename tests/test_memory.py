"""release_free_memory hands freed heap pages back: without it they stay resident."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROGRAM = """
import sys
from edgeres.memory import release_free_memory

def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024

base = rss_mb()
blocks = [bytearray(100_000) for _ in range(3000)]  # 300 MB of heap blocks, below mmap's threshold
pin = bytearray(100_000)  # the heap's top stays in use, so free() cannot shrink it by itself
del blocks
kept = rss_mb() - base
trimmed = release_free_memory()
print(kept, rss_mb() - base, trimmed)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim: Linux only")
def test_freed_heap_pages_go_back_to_the_system() -> None:
    out = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, check=True).stdout
    kept, after, trimmed = out.split()
    if trimmed != "True":
        pytest.skip("not glibc")
    assert float(kept) > 250  # what freeing alone leaves resident
    assert float(after) < 50
