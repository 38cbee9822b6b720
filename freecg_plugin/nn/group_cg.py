"""Group CG transform with sparse paths (FreeCG part 2).

Each of the G groups of K abstract edges gets its own fully connected (``uvw``) Clebsch-Gordan
tensor product, with weights shared by all atoms. The set of CG paths is an explicit list, so a
layer can keep only some paths ("sparse paths").
"""

import math
import re
from dataclasses import dataclass
from typing import Iterable, List, Sequence

import torch
from torch import Tensor, nn

from ._constants import ExactBuffers
from ._group_cg_kernel import KernelPlan, group_cg_cpu, library
from ._irreps import Irrep, Irreps, edge_irreps, wigner_3j

__all__ = ["CGPath", "GroupCGTransform", "enumerate_paths", "path_scales", "prepare_kernels", "INITS", "KERNELS", "SYMMETRIES"]

SYMMETRIES = ("O3", "SO3")
"""``O3``: rotations and reflections (parity must match); ``SO3``: rotations only."""

KERNELS = ("auto", "torch")
"""``auto``: the compiled CPU kernel where it applies, else the torch contraction; ``torch``: always the latter."""

INITS = ("xavier", "normal", "zeros")
"""Weight initialisations (see :meth:`GroupCGTransform.reset_parameters`)."""

_PATH_RE = re.compile(r"^\s*(\d+)([eo])\s*[x*⊗]\s*(\d+)([eo])\s*->\s*(\d+)([eo])\s*$")


@dataclass(frozen=True)
class CGPath:
    """One CG path ``(l1, p1) ⊗ (l2, p2) -> (l3, p3)``; parities are +1 (even) or -1 (odd)."""

    l1: int
    p1: int
    l2: int
    p2: int
    l3: int
    p3: int

    @classmethod
    def parse(cls, spec: "CGPath | str | Sequence[int]") -> "CGPath":
        """Read a path from ``"1o x 2e -> 1o"``, a 6-tuple ``(l1, p1, l2, p2, l3, p3)`` or a path."""
        if isinstance(spec, CGPath):
            return spec
        if isinstance(spec, str):
            match = _PATH_RE.match(spec)
            if match is None:
                raise ValueError(f"cannot read CG path {spec!r}; expected e.g. '1o x 2e -> 1o'")
            l1, p1, l2, p2, l3, p3 = match.groups()
            parity = {"e": 1, "o": -1}
            return cls(int(l1), parity[p1], int(l2), parity[p2], int(l3), parity[p3])
        values = tuple(spec)
        if len(values) != 6 or any(p not in (1, -1) for p in values[1::2]) or min(values[::2]) < 0:
            raise ValueError(f"cannot read CG path {spec!r}; expected (l1, p1, l2, p2, l3, p3), p = ±1")
        return cls(*(int(v) for v in values))

    @property
    def irreps(self) -> tuple[Irrep, Irrep, Irrep]:
        return Irrep(self.l1, self.p1), Irrep(self.l2, self.p2), Irrep(self.l3, self.p3)

    def allowed(self, symmetry: str) -> bool:
        """Whether the CG coefficient exists and the path respects ``symmetry``."""
        triangle = abs(self.l1 - self.l2) <= self.l3 <= self.l1 + self.l2
        return triangle and (symmetry == "SO3" or self.p1 * self.p2 == self.p3)

    def __str__(self) -> str:
        a, b, c = self.irreps
        return f"{a} x {b} -> {c}"


def _check_symmetry(symmetry: str) -> str:
    if symmetry not in SYMMETRIES:
        raise ValueError(f"symmetry must be one of {SYMMETRIES}, got {symmetry!r}")
    return symmetry


def enumerate_paths(
    irreps_in1: Irreps | str,
    irreps_in2: Irreps | str | None = None,
    irreps_out: Irreps | str | None = None,
    symmetry: str = "O3",
) -> list[CGPath]:
    """Every CG path between the edge irreps that ``symmetry`` allows.

    Order: loops over ``irreps_in1``, then ``irreps_in2``, then ``irreps_out`` (e3nn's
    ``FullyConnectedTensorProduct`` order). For ``1o+2e`` with ``O3`` this gives the reference's
    4 paths; with ``SO3`` it gives 8.
    """
    _check_symmetry(symmetry)
    in1 = edge_irreps(irreps_in1, "irreps_in1")
    in2 = in1 if irreps_in2 is None else edge_irreps(irreps_in2, "irreps_in2")
    out = in1 if irreps_out is None else edge_irreps(irreps_out, "irreps_out")
    paths = []
    for _, a in in1:
        for _, b in in2:
            for _, c in out:
                path = CGPath(a.l, a.p, b.l, b.p, c.l, c.p)
                if path.allowed(symmetry):
                    paths.append(path)
    return paths


def path_scales(paths: Sequence[CGPath], edges_per_group: int) -> list[float]:
    r"""Each path's normalisation :math:`c_p = \sqrt{(2 l_3 + 1) / (\#\text{paths into } l_3 \cdot K^2)}`
    (``K = edges_per_group``), in the order of ``paths``. A path's weights mean something only
    with the paths beside it: dropping a path raises the scale of the others into its output irrep."""
    fan_in: dict = {}
    for path in paths:
        fan_in[path.irreps[2]] = fan_in.get(path.irreps[2], 0) + edges_per_group**2
    return [math.sqrt(path.irreps[2].dim / fan_in[path.irreps[2]]) for path in paths]


class GroupCGTransform(ExactBuffers):
    r"""Per-group fully connected CG tensor product over abstract edges.

    For group ``g`` and path ``p = (l1, l2 -> l3)``:

    .. math::
        P[n, g, w, M] = \sum_p c_p \sum_{u, v} W[g, p, u, v, w]
                        \sum_{m_1, m_2} C^{l_1 l_2 l_3}_{m_1 m_2 M} x_1[n, g, u, m_1] x_2[n, g, v, m_2]

    with e3nn's component irrep normalisation and element path normalisation
    (:math:`c_p = \sqrt{(2 l_3 + 1) / (\#\text{paths into } l_3 \cdot K^2)}`), so it equals
    ``FullyConnectedTensorProduct(Kx(irreps), ..., shared_weights=False)`` called per group
    with weight ``W[g]``.

    Two implementations give the same numbers. On the CPU in eager mode (float32/float64) a
    compiled, fused kernel (``_group_cg_cpu.cpp``: one pass per atom and group over the sparse CG
    entries, threads over atoms, autograd to any order) runs when a C++ compiler is available.
    Otherwise, and always under ``torch.compile``, ``torch.export`` and TorchScript, a pure-torch
    contraction runs: per path one batched GEMM over groups (``x2 @ W``, ``W`` being shared over
    atoms), then a small per-atom contraction with the CG-weighted ``x1``.

    Args:
        irreps: edge irreps of both inputs, e.g. ``"1o+2e"`` (multiplicity 1 each).
        groups: G, number of groups.
        edges_per_group: K, abstract edges per group.
        paths: explicit list of paths (``CGPath``, ``"1o x 2e -> 1o"`` or 6-tuples). ``None``:
            every path ``symmetry`` allows (:func:`enumerate_paths`).
        symmetry: ``"O3"`` (parity must match) or ``"SO3"``.
        irreps_in2: edge irreps of the second input (default: ``irreps``).
        irreps_out: edge irreps of the output (default: ``irreps``); an output irrep that no
            path reaches is zero.
        init: ``"xavier"`` (Xavier-uniform of the authors' ``[1, G, numel]`` weight, about
            ±0.009 for 32 x 8, ``1o+2e``: the output is about 1 % of the inputs' scale),
            ``"normal"`` (standard normal, e3nn's convention: unit-variance inputs give a
            unit-variance output) or ``"zeros"`` (the layer starts as identity).
        kernel: ``"auto"`` (the compiled CPU kernel where it applies, as above) or ``"torch"``
            (always the pure-torch contraction). An attribute: it can be changed after building.

    Shapes:
        x1: ``[N, G, K, irreps.dim]``, x2: ``[N, G, K, irreps_in2.dim]``
        -> ``[N, G, K, irreps_out.dim]``; ``weight``: ``[G, paths, K, K, K]`` (``[g, p, u, v, w]``).
    """

    def __init__(
        self,
        irreps: Irreps | str,
        groups: int,
        edges_per_group: int,
        paths: Iterable[CGPath | str | Sequence[int]] | None = None,
        symmetry: str = "O3",
        irreps_in2: Irreps | str | None = None,
        irreps_out: Irreps | str | None = None,
        init: str = "xavier",
        kernel: str = "auto",
    ) -> None:
        super().__init__()
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
        self.kernel = kernel
        self.symmetry = _check_symmetry(symmetry)
        self.irreps_in1 = edge_irreps(irreps, "irreps")
        self.irreps_in2 = self.irreps_in1 if irreps_in2 is None else edge_irreps(irreps_in2, "irreps_in2")
        self.irreps_out = self.irreps_in1 if irreps_out is None else edge_irreps(irreps_out, "irreps_out")
        if groups < 1 or edges_per_group < 1:
            raise ValueError(f"groups and edges_per_group must be >= 1, got {groups} and {edges_per_group}")
        self.groups = int(groups)
        self.edges_per_group = int(edges_per_group)

        if paths is None:
            self.paths = enumerate_paths(self.irreps_in1, self.irreps_in2, self.irreps_out, symmetry)
        else:
            self.paths = [CGPath.parse(p) for p in paths]
        self._check_paths()

        # static per-path metadata (plain int lists keep forward TorchScript- and export-clean)
        ir_index = [{ir: i for i, (_, ir) in enumerate(irr)} for irr in (self.irreps_in1, self.irreps_in2, self.irreps_out)]
        scales = path_scales(self.paths, self.edges_per_group)
        slices = [irr.slices() for irr in (self.irreps_in1, self.irreps_in2, self.irreps_out)]
        self._path_in1: List[int] = []
        self._path_in2: List[int] = []
        self._cg_offsets: List[int] = [0]
        coefficients: List[torch.Tensor] = []
        kernel_slots = []  # per path: start and size of its irreps in x1, x2 and the output
        for path, scale in zip(self.paths, scales):
            a, b, c = path.irreps
            i1, i2, i3 = ir_index[0][a], ir_index[1][b], ir_index[2][c]
            self._path_in1.append(i1)
            self._path_in2.append(i2)
            coefficients.append(wigner_3j(a.l, b.l, c.l, dtype=torch.float64) * scale)  # [d1, d2, d3]
            self._cg_offsets.append(self._cg_offsets[-1] + coefficients[-1].numel())
            kernel_slots.append((slices[0][i1].start, a.dim, slices[1][i2].start, b.dim, slices[2][i3].start, c.dim))
        self._paths_by_out: List[List[int]] = [
            [p for p, path in enumerate(self.paths) if ir_index[2][path.irreps[2]] == o] for o in range(len(self.irreps_out))
        ]
        self._slices_in1: List[List[int]] = [[s.start, s.stop] for s in slices[0]]
        self._slices_in2: List[List[int]] = [[s.start, s.stop] for s in slices[1]]
        self._dims_out: List[int] = [ir.dim for _, ir in self.irreps_out]
        self.register_exact_buffer("cg", torch.cat([cg.reshape(-1) for cg in coefficients]))
        dims = (self.irreps_in1.dim, self.irreps_in2.dim, self.irreps_out.dim)
        self._kernel_plan = KernelPlan(self.groups, self.edges_per_group, dims, kernel_slots, coefficients)

        k = self.edges_per_group
        self.weight = nn.Parameter(torch.empty(self.groups, len(self.paths), k, k, k))
        self.reset_parameters(init)

    def _check_paths(self) -> None:
        if not self.paths:
            raise ValueError(f"no CG path: {self.irreps_in1} x {self.irreps_in2} -> {self.irreps_out} has none under {self.symmetry}")
        if len(set(self.paths)) != len(self.paths):
            raise ValueError(f"duplicate CG paths in {[str(p) for p in self.paths]}")
        for path in self.paths:
            a, b, c = path.irreps
            for ir, irreps, name in (
                (a, self.irreps_in1, "irreps"),
                (b, self.irreps_in2, "irreps_in2"),
                (c, self.irreps_out, "irreps_out"),
            ):
                if ir not in [i for _, i in irreps]:
                    raise ValueError(f"CG path {path}: {ir} is not in {name} = {irreps}")
            if not path.allowed(self.symmetry):
                why = "parity p1*p2 != p3" if path.allowed("SO3") else "|l1-l2| <= l3 <= l1+l2 fails"
                raise ValueError(f"CG path {path} is forbidden under {self.symmetry} ({why})")

    def reset_parameters(self, init: str = "xavier") -> None:
        """Re-initialise the weights: ``"xavier"`` (small, about ±0.009 for 32 x 8), ``"normal"``
        (unit variance) or ``"zeros"``."""
        if init == "zeros":
            nn.init.zeros_(self.weight)
        elif init == "normal":
            nn.init.normal_(self.weight)
        elif init == "xavier":
            numel = self.weight[0].numel()
            bound = math.sqrt(6.0 / ((self.groups + 1) * numel))
            nn.init.uniform_(self.weight, -bound, bound)
        else:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")

    def extra_repr(self) -> str:
        paths = ", ".join(str(p) for p in self.paths)
        return (
            f"groups={self.groups}, edges_per_group={self.edges_per_group}, symmetry={self.symmetry}, paths=[{paths}], kernel={self.kernel}"
        )

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        """``[N, G, K, D1] x [N, G, K, D2] -> [N, G, K, D_out]``."""
        n, g, k = x1.shape[0], self.groups, self.edges_per_group
        expected1 = [n, g, k, self._slices_in1[-1][1]]
        expected2 = [n, g, k, self._slices_in2[-1][1]]
        if list(x1.shape) != expected1 or list(x2.shape) != expected2:
            raise ValueError(
                "GroupCGTransform: expected x1 "
                + str(expected1)
                + " and x2 "
                + str(expected2)
                + ", got "
                + str(list(x1.shape))
                + " and "
                + str(list(x2.shape))
            )
        if not torch.jit.is_scripting() and self._kernel_applies(x1, x2):
            return self._kernel_forward(x1, x2)
        return self._torch_forward(x1, x2)

    @torch.jit.unused
    def _kernel_applies(self, x1: Tensor, x2: Tensor) -> bool:
        """Eager CPU float32/float64 on plain tensors (not traced, compiled or exported)."""
        if self.kernel != "auto" or torch.compiler.is_compiling():
            return False
        tensors = (x1, x2, self.weight)
        if any(type(t) not in (Tensor, nn.Parameter) or t.device.type != "cpu" for t in tensors):
            return False
        if x1.dtype not in (torch.float32, torch.float64) or any(t.dtype != x1.dtype for t in tensors):
            return False
        return self._kernel_plan.supported()

    @torch.jit.unused
    def _kernel_forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        return group_cg_cpu(x1, x2, self.weight, self._kernel_plan)

    def _torch_forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        n, g, k = x1.shape[0], self.groups, self.edges_per_group
        x1g = x1.transpose(0, 1)  # [G, N, K, D1]
        x2g = x2.transpose(0, 1)
        # second operand per irrep as GEMM rows (n, m2) x columns v: [G, N * d2, K]
        x2_rows: List[Tensor] = []
        for start, stop in self._slices_in2:
            x2_rows.append(x2g[..., start:stop].transpose(-1, -2).reshape(g, n * (stop - start), k))
        pieces: List[Tensor] = []
        for o, d3 in enumerate(self._dims_out):
            terms: List[Tensor] = []
            for p in self._paths_by_out[o]:
                start1, stop1 = self._slices_in1[self._path_in1[p]]
                start2, stop2 = self._slices_in2[self._path_in2[p]]
                d1, d2 = stop1 - start1, stop2 - start2
                cg = self.cg[self._cg_offsets[p] : self._cg_offsets[p + 1]].view(d1, d2 * d3)
                # S[(g,n), M, (m2,u)] = sum_m1 C[m1, m2, M] x1[g, n, u, m1]
                s = torch.matmul(x1g[..., start1:stop1], cg).view(g * n, k, d2, d3)
                s = s.permute(0, 3, 2, 1).reshape(g * n, d3, d2 * k)
                # R[(g,n), (m2,u), w] = sum_v x2[g, n, v, m2] W[g, p, u, v, w]  (one GEMM per group)
                w = self.weight[:, p].transpose(1, 2).reshape(g, k, k * k)
                r = torch.bmm(x2_rows[self._path_in2[p]], w).view(g * n, d2 * k, k)
                terms.append(torch.bmm(s, r))  # [(g,n), M, w]
            if len(terms) == 0:
                pieces.append(x1.new_zeros(g * n, d3, k))
            else:
                acc = terms[0]
                for term in terms[1:]:
                    acc = acc + term
                pieces.append(acc)
        # [(g,n), D_out, K] -> [N, G, K, D_out]
        return torch.cat(pieces, dim=1).view(g, n, -1, k).permute(1, 0, 3, 2)


def prepare_kernels(model: nn.Module) -> None:
    """Build the compiled CPU kernel now if a :class:`GroupCGTransform` in ``model`` may use it
    (``kernel="auto"``), rather than in its first forward pass: once per machine (about 15 s, then
    cached), and outside whatever the caller times, e.g. the training clock. Nothing happens when
    the kernel is already built or no transform can use it."""
    if any(isinstance(m, GroupCGTransform) and m.kernel == "auto" for m in model.modules()):
        library()
