"""The compiled CPU kernel of the group CG and its autograd (any order).

``_group_cg_cpu.cpp`` is compiled once per machine with the system C++ compiler (``$CXX`` or
``c++``; about 15 s) into a cache folder (``$FREECG_KERNEL_CACHE``, else
``$XDG_CACHE_HOME/freecg_plugin`` or ``~/.cache/freecg_plugin``), keyed by the source, the
compiler and the CPU, and loaded with ctypes. Where that is impossible (no compiler, a read-only
cache, code loaded from a ``torch.package`` archive) :func:`library` returns ``None`` with a
one-time warning and :class:`~freecg_plugin.nn.GroupCGTransform` uses its pure-torch contraction.

The transform is the 4-linear form ``F(a, b, W, z)`` (see the C++ file); its output is dF/dz and
its gradients dF/da, dF/db, dF/dW. Each derivative of those is again one of them with one input
replaced by an incoming gradient, so the two autograd functions below differentiate each other to
any order (forces in training need the second).
"""

import ctypes
import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import warnings
from pathlib import Path
from typing import List, Optional, Tuple

import torch
from torch import Tensor

from ..files import write_atomic

__all__ = ["KernelPlan", "group_cg_cpu", "library"]

_LOG = logging.getLogger(__name__)
_SOURCE = "_group_cg_cpu.cpp"
_FLAGS = ["-O3", "-march=native", "-std=c++17", "-shared", "-fPIC", "-fopenmp"]


def _cache_dir() -> Path:
    if os.environ.get("FREECG_KERNEL_CACHE"):
        return Path(os.environ["FREECG_KERNEL_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "freecg_plugin"


def _cpu_fingerprint() -> str:
    """What ``-march=native`` depends on: the CPU model and its instruction-set flags."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return "\n".join(sorted({line for line in lines if line.startswith(("model name", "flags"))}))
    except OSError:
        return platform.processor() + platform.machine()


def _compile(source: Path) -> Path:
    compiler = shutil.which(os.environ.get("CXX", "c++"))
    if compiler is None:
        raise RuntimeError(f"no C++ compiler ({os.environ.get('CXX', 'c++')!r} is not on PATH)")
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True, check=True).stdout
    key = hashlib.sha256("\0".join([source.read_text(), version, " ".join(_FLAGS), _cpu_fingerprint()]).encode()).hexdigest()
    folder = _cache_dir()
    target = folder / f"group_cg_{key[:20]}.so"
    if target.exists():
        return target
    _LOG.info("building the group CG kernel into %s (once per machine, about 15 s)", target)

    def build(partial: str) -> None:
        built = subprocess.run([compiler, *_FLAGS, "-o", partial, str(source)], capture_output=True, text=True)
        if built.returncode != 0:
            raise RuntimeError(f"{compiler} failed:\n{built.stderr[-2000:]}")

    # atomic: concurrent builders each leave a complete file, a killed one's partial file goes
    # with the next build
    write_atomic(target, build)
    return target


@functools.cache
def library() -> Optional[ctypes.CDLL]:
    """The compiled kernel, built on first use; ``None`` (with a warning) where it cannot be."""
    try:
        source = Path(__file__).with_name(_SOURCE)
        if not source.is_file():
            raise RuntimeError(f"kernel source {source} is not a file (code loaded from an archive?)")
        lib = ctypes.CDLL(str(_compile(source)))
    except Exception as error:  # any failure means: use the torch contraction
        warnings.warn(f"freecg_plugin: compiled group CG kernel unavailable, using torch ({error})", stacklevel=2)
        return None
    pointer = ctypes.c_void_p
    lib.freecg_group_cg_supported.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.freecg_group_cg_supported.restype = ctypes.c_int
    for suffix in ("f32", "f64"):
        forward = getattr(lib, f"freecg_group_cg_forward_{suffix}")
        forward.argtypes = [pointer] * 10
        forward.restype = ctypes.c_int
        backward = getattr(lib, f"freecg_group_cg_backward_{suffix}")
        backward.argtypes = [pointer] * 10 + [ctypes.c_int] + [pointer] * 3
        backward.restype = ctypes.c_int
    return lib


def _table(entries: List[Tuple[int, int, int, float]], order: Tuple[int, ...], run: Tuple[int, ...]):
    """Entries ``(m1, m2, M, c)`` sorted by the index positions ``order``, each marked when it
    ends a run of equal ``run`` indices: ``(int32 [nnz, 4], values)``."""
    entries = sorted(entries, key=lambda e: tuple(e[i] for i in order))
    rows = []
    for i, e in enumerate(entries):
        last = i + 1 == len(entries) or any(entries[i + 1][j] != e[j] for j in run)
        rows.append([e[0], e[1], e[2], int(last)])
    return rows, [e[3] for e in entries]


class KernelPlan:
    """Static description of one transform for the kernel: sizes, paths and sparse CG entries.

    Args:
        groups, edges_per_group, dims: G, K and the irreps dimensions (D1, D2, D_out).
        paths: per path ``(s1, d1, s2, d2, s3, d3)``: irreps slice starts and sizes of its inputs
            and output.
        coefficients: per path the dense CG block ``[d1, d2, d3]`` (normalisation included).
    """

    def __init__(
        self,
        groups: int,
        edges_per_group: int,
        dims: Tuple[int, int, int],
        paths: List[Tuple[int, int, int, int, int, int]],
        coefficients: List[Tensor],
    ) -> None:
        self.groups, self.edges_per_group, self.dims = groups, edges_per_group, dims
        self.max_dim = max(max(slot[1], slot[3], slot[5]) for slot in paths)
        info, by_out, by_b, values_out, values_b = [], [], [], [], []
        for slot, block in zip(paths, coefficients, strict=True):
            entries = [(*map(int, i), float(block[tuple(i)])) for i in (block.abs() > 1e-14).nonzero().tolist()]
            info.append([*slot, len(by_out), len(by_out) + len(entries)])
            rows, values = _table(entries, order=(0, 2, 1), run=(0, 2))  # (m1, M) runs
            by_out += rows
            values_out += values
            rows, values = _table(entries, order=(1, 0, 2), run=(1,))  # m2 runs
            by_b += rows
            values_b += values
        self.path_info = torch.tensor(info, dtype=torch.int32)
        self.by_out = torch.tensor(by_out, dtype=torch.int32).reshape(-1, 4)
        self.by_b = torch.tensor(by_b, dtype=torch.int32).reshape(-1, 4)
        self.values_out = {dtype: torch.tensor(values_out, dtype=dtype) for dtype in (torch.float32, torch.float64)}
        self.values_b = {dtype: torch.tensor(values_b, dtype=dtype) for dtype in (torch.float32, torch.float64)}

    def supported(self) -> bool:
        """Whether the compiled kernel exists here and covers this K and these irreps."""
        lib = library()
        return lib is not None and bool(lib.freecg_group_cg_supported(self.edges_per_group, self.max_dim))

    def _arguments(self, n: int, *tensors: Tensor) -> List[Tensor]:
        """The kernel's leading arguments (sizes and tables), then ``tensors``."""
        threads = max(1, min(torch.get_num_threads(), n // 8))
        dims = torch.tensor([n, self.groups, self.edges_per_group, *self.dims, len(self.path_info), threads], dtype=torch.int64)
        dtype = tensors[0].dtype
        return [dims, self.path_info, self.by_out, self.values_out[dtype], self.by_b, self.values_b[dtype], *tensors]

    def forward(self, a: Tensor, b: Tensor, w: Tensor) -> Tensor:
        """``[N, G, K, D1] x [N, G, K, D2] (W [G, P, K, K, K]) -> [N, G, K, D_out]``."""
        a, b, w = a.contiguous(), b.contiguous(), w.contiguous()
        out = a.new_empty(a.shape[0], self.groups, self.edges_per_group, self.dims[2])
        fn = getattr(library(), "freecg_group_cg_forward_" + _SUFFIX[a.dtype])
        arguments = self._arguments(a.shape[0], a, b, w, out)  # held while the kernel runs
        _check(fn(*(t.data_ptr() for t in arguments)), self)
        return out

    def backward(self, a: Tensor, b: Tensor, w: Tensor, z: Tensor, need: Tuple[bool, bool, bool]) -> Tuple[Tensor, Tensor, Tensor]:
        """dF/da, dF/db, dF/dW at output gradient ``z``; an output not in ``need`` is empty."""
        a, b, w, z = a.contiguous(), b.contiguous(), w.contiguous(), z.contiguous()
        ga = torch.empty_like(a) if need[0] else a.new_empty(0)
        gb = torch.empty_like(b) if need[1] else b.new_empty(0)
        gw = torch.empty_like(w) if need[2] else w.new_empty(0)
        if any(need):
            flags = int(need[0]) | 2 * int(need[1]) | 4 * int(need[2])
            fn = getattr(library(), "freecg_group_cg_backward_" + _SUFFIX[a.dtype])
            arguments = self._arguments(a.shape[0], a, b, w, z)
            _check(fn(*(t.data_ptr() for t in arguments), flags, ga.data_ptr(), gb.data_ptr(), gw.data_ptr()), self)
        return ga, gb, gw


_SUFFIX = {torch.float32: "f32", torch.float64: "f64"}


def _check(status: int, plan: KernelPlan) -> None:
    if status != 0:
        raise RuntimeError(f"group CG kernel: K = {plan.edges_per_group} is not compiled (status {status})")


def _add(total: Optional[Tensor], term: Tensor) -> Tensor:
    return term if total is None else total + term


class _Forward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor, w: Tensor, plan: KernelPlan) -> Tensor:
        ctx.save_for_backward(a, b, w)
        ctx.plan = plan
        return plan.forward(a, b, w)

    @staticmethod
    def backward(ctx, grad: Tensor):
        a, b, w = ctx.saved_tensors
        need = tuple(ctx.needs_input_grad[:3])
        ga, gb, gw = _Backward.apply(a, b, w, grad, need, ctx.plan)
        return (ga if need[0] else None), (gb if need[1] else None), (gw if need[2] else None), None


class _Backward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor, w: Tensor, z: Tensor, need: Tuple[bool, bool, bool], plan: KernelPlan):
        ctx.save_for_backward(a, b, w, z)
        ctx.plan, ctx.need = plan, need
        ctx.set_materialize_grads(False)
        return plan.backward(a, b, w, z, need)

    @staticmethod
    def backward(ctx, grad_a: Optional[Tensor], grad_b: Optional[Tensor], grad_w: Optional[Tensor]):
        a, b, w, z = ctx.saved_tensors
        plan = ctx.plan
        want_a, want_b, want_w, want_z = ctx.needs_input_grad[:4]
        da = db = dw = dz = None
        # <grad_a, dF/da(b, W, z)> = F(grad_a, b, W, z): differentiate with a := grad_a
        if ctx.need[0] and grad_a is not None:
            _, gb, gw = _Backward.apply(grad_a, b, w, z, (False, want_b, want_w), plan)
            db = _add(db, gb) if want_b else db
            dw = _add(dw, gw) if want_w else dw
            dz = _add(dz, _Forward.apply(grad_a, b, w, plan)) if want_z else dz
        if ctx.need[1] and grad_b is not None:  # F(a, grad_b, W, z)
            ga, _, gw = _Backward.apply(a, grad_b, w, z, (want_a, False, want_w), plan)
            da = _add(da, ga) if want_a else da
            dw = _add(dw, gw) if want_w else dw
            dz = _add(dz, _Forward.apply(a, grad_b, w, plan)) if want_z else dz
        if ctx.need[2] and grad_w is not None:  # F(a, b, grad_w, z)
            ga, gb, _ = _Backward.apply(a, b, grad_w, z, (want_a, want_b, False), plan)
            da = _add(da, ga) if want_a else da
            db = _add(db, gb) if want_b else db
            dz = _add(dz, _Forward.apply(a, b, grad_w, plan)) if want_z else dz
        return da, db, dw, dz, None, None


def group_cg_cpu(a: Tensor, b: Tensor, w: Tensor, plan: KernelPlan) -> Tensor:
    """The group CG by the compiled kernel, differentiable to any order (CPU, float32/float64)."""
    return _Forward.apply(a, b, w, plan)
