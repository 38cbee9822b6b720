"""Statistics over seeds: mean ± std (:func:`mean_std`) and the verdict rule (:func:`verdict`),
the same for every comparison."""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence

__all__ = ["VERDICT_SPREAD", "format_stat", "mean_std", "verdict"]


def mean_std(values: List[float]) -> Dict[str, Any]:
    """Mean, sample standard deviation, count and the values themselves."""
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return {"mean": mean, "std": std, "n": len(values), "values": list(values)}


VERDICT_SPREAD = 2.0
"""A difference is clear when it exceeds this many standard errors of the difference."""


def verdict(freecg: Sequence[float], host: Sequence[float]) -> str:
    """``helps``, ``hurts`` or ``no clear difference``, from per-seed test errors (lower is better).

    The rule: with means ``m`` and sample standard deviations ``s`` over ``n`` seeds, the
    difference ``d = m_FreeCG - m_host`` is clear when ``|d| > 2 * sqrt(s_FreeCG^2 / n_FreeCG +
    s_host^2 / n_host)`` (two standard errors of the difference); then FreeCG ``helps`` if ``d < 0``
    and ``hurts`` if ``d > 0``. With fewer than two seeds on either side the spread is unknown:
    ``undecided (one seed)``.
    """
    if len(freecg) < 2 or len(host) < 2:
        return "undecided (one seed)"
    a, b = mean_std([float(v) for v in freecg]), mean_std([float(v) for v in host])
    difference = a["mean"] - b["mean"]
    error = math.sqrt(a["std"] ** 2 / a["n"] + b["std"] ** 2 / b["n"])
    if abs(difference) <= VERDICT_SPREAD * error:
        return "no clear difference"
    return "helps" if difference < 0 else "hurts"


def format_stat(stat: Optional[Dict[str, Any]], digits: int = 3, significant: bool = False) -> str:
    """``mean ± std`` (just the mean for one value; empty for none): ``digits`` decimals, or
    ``digits`` significant figures with ``significant``."""
    if stat is None:
        return ""
    if significant:
        return f"{stat['mean']:.{digits}g} ± {stat['std']:.2g}" if stat["n"] > 1 else f"{stat['mean']:.{digits}g}"
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}" if stat["n"] > 1 else f"{stat['mean']:.{digits}f}"
