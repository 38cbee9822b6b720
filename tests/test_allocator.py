"""glibc's heap allocator setting (``freecg md --heap-allocator``): large torch buffers come from
the heap, not from fresh mappings, and freed memory stays for the next call. Each case runs in a
fresh interpreter: the setting changes the whole process."""

import json
import subprocess
import sys

import pytest

from freecg_plugin.cli import parser as _parser

PROBE = r"""
import ctypes, json, sys
import torch

class MallInfo2(ctypes.Structure):  # glibc >= 2.33
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "heap":
    from freecg_plugin.allocator import keep_freed_memory
    keep_freed_memory()
before = libc.mallinfo2()
buffer = torch.empty(16 * 2**20).fill_(1.0)  # 64 MiB, twice glibc's largest mmap threshold
during = libc.mallinfo2()
del buffer
after = libc.mallinfo2()
print(json.dumps({"mapped": during.hblkhd - before.hblkhd, "heap_used": during.uordblks - before.uordblks,
                  "heap_kept": after.arena - before.arena}))
"""


def probe(setting: str) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE, setting], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_large_buffers_come_from_the_heap_and_stay_there():
    mib = 2**20
    default, heap = probe("default"), probe("heap")
    assert default["mapped"] >= 64 * mib and default["heap_used"] < mib  # glibc as it comes: a fresh mapping
    assert heap["mapped"] == 0 and heap["heap_used"] >= 64 * mib  # from the heap
    assert heap["heap_kept"] >= 60 * mib  # freed, and the heap keeps it for the next call


def test_the_md_and_evaluate_commands_take_the_option():
    assert _parser().parse_args(["md", "--output", "run", "--heap-allocator"]).heap_allocator
    assert not _parser().parse_args(["md", "--output", "run"]).heap_allocator
    args = _parser().parse_args(["evaluate", "--checkpoint", "a.ckpt", "--data", "b.xyz", "--heap-allocator"])
    assert args.heap_allocator
