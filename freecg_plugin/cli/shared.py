"""What several commands share: the ``key=value`` overrides argument, the list of shipped configs
in a command's help, and ``--heap-allocator``."""

from __future__ import annotations

from ..configs.shipped import shipped_configs

__all__ = ["HEAP_HELP", "OVERRIDES", "shipped_help", "shipped_names", "use_heap_allocator"]

OVERRIDES = dict(nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. data.train=my.xyz optim.lr=1e-3 model.freecg=null")

HEAP_HELP = (
    "large systems on the CPU: glibc serves every buffer from its heap and keeps freed memory for reuse "
    "(faster above ~10^3 atoms, more peak memory; see the docs' performance page)"
)


def shipped_help(kind: str) -> str:
    """``name: description | ...`` of every shipped config of ``kind``, for a command's help."""
    text = " | ".join(f"{name}: {about}" for name, about in shipped_configs(kind).items())
    return text.replace("%", "%%")  # argparse formats help with %


def shipped_names(kind: str) -> str:
    """``a, b, c``: the names of the shipped configs of ``kind``."""
    return ", ".join(shipped_configs(kind))


def use_heap_allocator(args) -> None:
    if args.heap_allocator:
        from ..allocator import keep_freed_memory

        keep_freed_memory()
