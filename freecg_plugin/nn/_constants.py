"""Buffers derived from exact constants (CG coefficients, basis changes).

Casting a float32 buffer to float64 keeps its float32 rounding, which breaks equivariance at
1e-7. These buffers are re-derived from a float64 master at every ``.to()``/``.double()``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["ExactBuffers"]


class ExactBuffers(nn.Module):
    """A module whose exact-constant buffers follow its dtype and device without rounding."""

    def register_exact_buffer(self, name: str, value: Tensor) -> None:
        masters = self.__dict__.setdefault("_exact_masters", {})
        masters[name] = value.detach().to("cpu", torch.float64).clone()
        self.register_buffer(name, value.detach().to(torch.get_default_dtype()), persistent=False)

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        for name, master in self.__dict__.get("_exact_masters", {}).items():
            current = getattr(self, name)
            setattr(self, name, master.to(device=current.device, dtype=current.dtype))
        return self
