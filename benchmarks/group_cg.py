"""Group CG speed: ours vs the authors' e3nn form, side by side in one run.

    python benchmarks/group_cg.py            # G = 32, K = 8, lmax 2 (1o+2e), float32, CPU or --device cuda

Prints, in order: forward+backward time of both at N = 168 and 1,000 and the speed-up (ours is the
compiled CPU kernel where it applies; our pure-torch contraction is timed alongside); ours at
N = 100, 1,000, 10,000 with time per atom and peak memory (each size in a fresh subprocess on
the CPU, peak resident memory above the inputs, sampled every ms; CUDA: peak allocated); a 2048 x 2048
fp32 matmul's GFLOP/s and the group CG's useful GFLOP/s at N = 1,000, counted as
2 x sum_paths (K^3 (2 l3 + 1) + K^2 nnz(C_path)) x N x G forward and 3x that forward+backward,
and the speed-up that useful work alone would allow at the matmul rate. The last five lines are machine-readable (``name: value``).
"""

from __future__ import annotations

import argparse
import copy
import json
import resource
import statistics
import subprocess
import sys
import time

import torch
from common import PeakRSS

from freecg_plugin import GroupCGTransform
from freecg_plugin.testing import e3nn_reference_group_cg


def build(groups: int, k: int, device: str) -> GroupCGTransform:
    torch.manual_seed(0)
    return GroupCGTransform("1o+2e", groups, k).to(device)


def inputs(module: GroupCGTransform, n: int, device: str):
    shape = (n, module.groups, module.edges_per_group, module.irreps_in1.dim)
    return torch.randn(shape, device=device, requires_grad=True), torch.randn(shape, device=device, requires_grad=True)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def step(fn, x1, x2) -> None:
    out = fn(x1, x2)
    out.square().sum().backward()


def time_side_by_side(fns: dict, x1, x2, repeats: int, device: str) -> dict:
    """Median seconds of forward+backward, the candidates interleaved in every round."""
    for fn in fns.values():
        step(fn, x1, x2)
    sync(device)
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            sync(device)
            start = time.perf_counter()
            step(fn, x1, x2)
            sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def useful_flops(module: GroupCGTransform, n: int) -> float:
    """2 x sum_paths (K^3 (2 l3 + 1) + K^2 nnz(C)) x N x G (forward)."""
    from e3nn.o3._wigner import wigner_3j

    k = module.edges_per_group
    per_group = 0
    for path in module.paths:
        nnz = int((wigner_3j(path.l1, path.l2, path.l3, dtype=torch.float64).abs() > 1e-12).sum())
        per_group += k**3 * (2 * path.l3 + 1) + k**2 * nnz
    return 2.0 * per_group * n * module.groups


def matmul_gflops(device: str, size: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    a @ b
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        sync(device)
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times) / 1e9


def single_size(n: int, groups: int, k: int, device: str, repeats: int) -> dict:
    """Ours alone at one size: median time and peak memory above the inputs."""
    module = build(groups, k, device)
    x1, x2 = inputs(module, n, device)
    sync(device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        seconds = time_side_by_side({"ours": module}, x1, x2, repeats, device)["ours"]
        peak = torch.cuda.max_memory_allocated() - base
    else:
        before = resource.getrusage(resource.RUSAGE_SELF)
        with PeakRSS() as rss:
            seconds = time_side_by_side({"ours": module}, x1, x2, repeats, device)["ours"]
        after = resource.getrusage(resource.RUSAGE_SELF)
        peak = rss.bytes
        user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
        steps = repeats + 1  # time_side_by_side warms up once
        return {
            "n": n,
            "seconds": seconds,
            "peak_bytes": max(peak, 0),
            "kernel_share": system / max(user + system, 1e-9),
            "user_seconds": user / steps,
        }
    return {"n": n, "seconds": seconds, "peak_bytes": max(peak, 0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--groups", type=int, default=32)
    parser.add_argument("--edges-per-group", type=int, default=8)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--single", type=int, help=argparse.SUPPRESS)  # internal: one size, JSON out
    args = parser.parse_args()
    g, k, device = args.groups, args.edges_per_group, args.device

    if args.single is not None:
        print(json.dumps(single_size(args.single, g, k, device, args.repeats)))
        return

    module = build(g, k, device)
    x1, x2 = inputs(module, 2, device)
    kind = "compiled CPU kernel" if module._kernel_applies(x1, x2) else "torch contraction"
    print(f"group CG: G={g}, K={k}, irreps 1o+2e, float32, device={device}, threads={torch.get_num_threads()}, ours = {kind}")
    contraction = copy.deepcopy(module)
    contraction.kernel = "torch"
    reference = e3nn_reference_group_cg(module)
    speedups, reference_seconds = {}, {}
    for n in (168, 1000):
        x1, x2 = inputs(module, n, device)
        candidates = {"ours": module, "torch": contraction, "e3nn": reference}
        t = time_side_by_side(candidates, x1, x2, args.repeats if n < 1000 else 3, device)
        speedups[n], reference_seconds[n] = t["e3nn"] / t["ours"], t["e3nn"]
        print(
            f"N={n:>6}: ours {t['ours'] * 1e3:8.2f} ms   (our torch contraction {t['torch'] * 1e3:8.2f} ms)   "
            f"e3nn reference {t['e3nn'] * 1e3:8.2f} ms   ratio {speedups[n]:.1f}x",
            flush=True,
        )

    per_atom, user_cpu = {}, {}
    for n in (100, 1000, 10000):
        proc = subprocess.run(
            [
                sys.executable,
                __file__,
                "--single",
                str(n),
                "--groups",
                str(g),
                "--edges-per-group",
                str(k),
                "--device",
                device,
                "--repeats",
                str(args.repeats if n < 10000 else 3),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        per_atom[n], user_cpu[n] = result["seconds"] / n * 1e6, result
        print(
            f"ours N={n:>6}: {result['seconds'] * 1e3:9.2f} ms  {per_atom[n]:7.2f} us/atom  "
            f"peak memory {result['peak_bytes'] / 2**20:8.1f} MiB"
            + (
                f"  (CPU time: {result['user_seconds'] / n * 1e6:6.1f} us/atom in user space, "
                f"{100 * result['kernel_share']:.0f}% of all CPU time in the OS kernel: page faults)"
                if "kernel_share" in result
                else ""
            ),
            flush=True,
        )
    print(
        f"time per atom N=10000 / N=1000: {per_atom[10000] / per_atom[1000]:.2f} (flat within 30%: {abs(per_atom[10000] / per_atom[1000] - 1) <= 0.3})"
    )
    if all("user_seconds" in r for r in user_cpu.values()):
        ratio = (user_cpu[10000]["user_seconds"] / 10000) / (user_cpu[1000]["user_seconds"] / 1000)
        print(f"user-space CPU time per atom N=10000 / N=1000: {ratio:.2f}")

    n = 1000
    x1, x2 = inputs(module, n, device)
    t_ours = time_side_by_side({"ours": module}, x1, x2, args.repeats, device)["ours"]
    gflops_cg = 3 * useful_flops(module, n) / t_ours / 1e9
    gflops_mm = matmul_gflops(device)
    print(
        f"group CG useful work at N=1000: {3 * useful_flops(module, n) / 1e9:.3f} GFLOP forward+backward "
        f"({100 * gflops_cg / gflops_mm:.1f}% of the matmul rate)"
    )
    for n in (168, 1000):
        floor = 3 * useful_flops(module, n) / (gflops_mm * 1e9)
        print(
            f"bound N={n}: the useful work alone at the matmul rate takes {floor * 1e3:.2f} ms, "
            f"a speed-up of at most {reference_seconds[n] / floor:.0f}x over this run's reference"
        )

    print(f"speedup N=168: {speedups[168]:.1f}x")
    print(f"speedup N=1000: {speedups[1000]:.1f}x")
    print(f"us_per_atom N=10000: {per_atom[10000]:.1f}")
    print(f"gflops group_cg N=1000: {gflops_cg:.1f}")
    print(f"gflops matmul: {gflops_mm:.1f}")


if __name__ == "__main__":
    main()
