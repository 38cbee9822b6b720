"""The compiled CPU kernel of the group CG: same numbers and derivatives as the torch contraction."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from freecg_plugin import GroupCGTransform
from freecg_plugin.nn._group_cg_kernel import group_cg_cpu, library


def _module(irreps, groups, k, dtype, generator, **kwargs):
    module = GroupCGTransform(irreps, groups, k, **kwargs).to(dtype)
    torch.nn.init.normal_(module.weight, generator=generator)
    return module


def _inputs(module, n, generator, requires_grad=True):
    shape = (n, module.groups, module.edges_per_group)
    dtype = module.weight.dtype
    x1 = torch.randn(*shape, module.irreps_in1.dim, dtype=dtype, generator=generator, requires_grad=requires_grad)
    x2 = torch.randn(*shape, module.irreps_in2.dim, dtype=dtype, generator=generator, requires_grad=requires_grad)
    return x1, x2


def _both(module, fn):
    """``fn()`` with the compiled kernel, then with the torch contraction."""
    module.kernel = "auto"
    kernel = fn()
    module.kernel = "torch"
    torch_result = fn()
    module.kernel = "auto"
    return kernel, torch_result


def test_kernel_is_built_on_this_machine():
    assert library() is not None, "the group CG kernel needs a C++ compiler (c++ or $CXX) with OpenMP"


@pytest.mark.parametrize(
    "irreps, groups, k, symmetry",
    [
        ("1o+2e", 32, 8, "O3"),
        ("0e+1o+2e", 4, 4, "O3"),
        ("1o+2e+3o", 3, 16, "SO3"),
        ("0e+1o+2e+3o+4e", 2, 2, "SO3"),
        ("1o", 2, 32, "SO3"),
    ],
)
@pytest.mark.parametrize("dtype, rtol", [(torch.float32, 2e-6), (torch.float64, 1e-13)])
def test_kernel_matches_torch_contraction(irreps, groups, k, symmetry, dtype, rtol, generator):
    module = _module(irreps, groups, k, dtype, generator, symmetry=symmetry)
    x1, x2 = _inputs(module, 11, generator)
    assert module._kernel_applies(x1, x2)
    z = torch.randn(11, groups, k, module.irreps_out.dim, dtype=dtype, generator=generator)

    def run():
        out = module(x1, x2)
        return (out, *torch.autograd.grad((out * z).sum(), (x1, x2, module.weight)))

    for a, b in zip(*_both(module, run), strict=True):
        assert (a - b).abs().max() <= rtol * b.abs().max()


def test_kernel_second_derivatives_match_torch(generator):
    """Force training differentiates the gradient: every mixed second derivative is checked."""
    module = _module("1o+2e", 3, 4, torch.float64, generator)
    x1, x2 = _inputs(module, 5, generator)
    z = torch.randn(5, 3, 4, 8, dtype=torch.float64, generator=generator)

    def run():
        out = module(x1, x2)
        first = torch.autograd.grad((out * z).square().sum(), (x1, x2, module.weight), create_graph=True)
        penalty = sum((g * torch.sin(torch.arange(g.numel(), dtype=g.dtype)).view_as(g)).sum() for g in first)
        return torch.autograd.grad(penalty, (x1, x2, module.weight))

    for a, b in zip(*_both(module, run), strict=True):
        assert (a - b).abs().max() <= 1e-12 * b.abs().max()


def test_kernel_gradcheck_and_gradgradcheck(generator):
    module = _module("0e+1o+2e", 2, 2, torch.float64, generator)
    x1, x2 = _inputs(module, 3, generator)
    weight = module.weight.detach().clone().requires_grad_(True)

    def fn(a, b, w):
        return group_cg_cpu(a, b, w, module._kernel_plan)

    assert torch.autograd.gradcheck(fn, (x1, x2, weight))
    assert torch.autograd.gradgradcheck(fn, (x1, x2, weight))


def test_kernel_threads_agree(generator):
    module = _module("1o+2e", 4, 8, torch.float64, generator)
    x1, x2 = _inputs(module, 64, generator)
    previous = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            out = module(x1, x2)
            results.append((out, *torch.autograd.grad(out.square().sum(), (x1, x2, module.weight))))
    finally:
        torch.set_num_threads(previous)
    for a, b in zip(*results, strict=True):
        assert (a - b).abs().max() <= 1e-13 * b.abs().max()


def test_kernel_on_no_atoms(generator):
    module = _module("1o+2e", 2, 8, torch.float32, generator)
    x1, x2 = _inputs(module, 0, generator)
    out = module(x1, x2)
    assert out.shape == (0, 2, 8, 8)
    grads = torch.autograd.grad(out.sum(), (x1, module.weight), allow_unused=True)
    assert grads[0].shape == x1.shape and grads[1].abs().max() == 0


def test_kernel_not_used_where_it_does_not_apply(generator):
    module = _module("1o+2e", 2, 3, torch.float64, generator)  # K = 3 is not compiled
    x1, x2 = _inputs(module, 4, generator)
    assert not module._kernel_applies(x1, x2)
    module = _module("1o+2e", 2, 4, torch.float64, generator)
    x1, x2 = _inputs(module, 4, generator)
    assert module._kernel_applies(x1, x2)
    assert not module._kernel_applies(x1.float(), x2.float())  # dtype differs from the weights
    module.kernel = "torch"
    assert not module._kernel_applies(x1, x2)
    assert "kernel=torch" in repr(module)


def _run_isolated(code: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env={**os.environ, **env}, capture_output=True, text=True, timeout=600
    )


CHECK = """
    import warnings, torch
    from freecg_plugin import GroupCGTransform
    m = GroupCGTransform("1o+2e", 2, 8)
    x1, x2 = torch.randn(3, 2, 8, 8), torch.randn(3, 2, 8, 8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        used = m._kernel_applies(x1, x2)
        out = m(x1, x2)
    m.kernel = "torch"
    assert torch.allclose(out, m(x1, x2), atol=1e-6)
    print("used", used)
    print("warned", [str(w.message) for w in caught])
"""


@pytest.mark.slow
def test_without_a_compiler_the_torch_contraction_runs(tmp_path):
    run = _run_isolated(CHECK, {"CXX": str(tmp_path / "no-such-compiler"), "FREECG_KERNEL_CACHE": str(tmp_path / "cache")})
    assert run.returncode == 0, run.stderr
    assert "used False" in run.stdout
    assert "compiled group CG kernel unavailable" in run.stdout and "no-such-compiler" in run.stdout
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


@pytest.mark.slow
def test_kernel_builds_into_an_empty_cache(tmp_path):
    cache = tmp_path / "cache"
    run = _run_isolated(CHECK, {"FREECG_KERNEL_CACHE": str(cache)})
    assert run.returncode == 0, run.stderr
    assert "used True" in run.stdout and "warned []" in run.stdout
    built = sorted(p.name for p in cache.iterdir())
    assert len(built) == 1 and built[0].startswith("group_cg_") and built[0].endswith(".so")  # no partial files left
    again = _run_isolated(CHECK, {"FREECG_KERNEL_CACHE": str(cache)})  # second process: loads, builds nothing
    assert "used True" in again.stdout and sorted(p.name for p in cache.iterdir()) == built


PREPARE = """
    import os, torch
    from freecg_plugin.nn import GroupCGTransform, prepare_kernels
    m = torch.nn.Sequential(torch.nn.Identity(), GroupCGTransform("1o+2e", 2, 8, kernel=os.environ["KERNEL"]))
    prepare_kernels(m)
"""


@pytest.mark.slow
def test_prepare_kernels_builds_before_the_first_forward_pass_and_only_when_a_transform_may_use_it(tmp_path):
    # what the trainer calls before its clock starts, so that the one-time build is not training time
    cache = tmp_path / "cache"
    run = _run_isolated(PREPARE, {"FREECG_KERNEL_CACHE": str(cache), "KERNEL": "torch"})
    assert run.returncode == 0, run.stderr
    assert not cache.exists() or not any(cache.iterdir())  # kernel="torch": nothing to build
    run = _run_isolated(PREPARE, {"FREECG_KERNEL_CACHE": str(cache), "KERNEL": "auto"})
    assert run.returncode == 0, run.stderr
    built = sorted(p.name for p in cache.iterdir())
    assert len(built) == 1 and built[0].startswith("group_cg_") and built[0].endswith(".so")


@pytest.mark.slow
def test_a_build_killed_midway_leaves_a_partial_file_the_next_build_removes(tmp_path):
    cache = tmp_path / "cache"
    process = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(CHECK)],
        env={**os.environ, "FREECG_KERNEL_CACHE": str(cache)},
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while not (cache.is_dir() and any(cache.iterdir())) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)  # the compiler too: nothing can clean up
    process.wait()
    partial = sorted(p.name for p in cache.iterdir())
    assert len(partial) == 1 and partial[0].count(".") > 1, partial  # killed mid-build: a temporary file, no kernel
    run = _run_isolated(CHECK, {"FREECG_KERNEL_CACHE": str(cache)})
    assert run.returncode == 0 and "used True" in run.stdout, run.stderr
    built = sorted(p.name for p in cache.iterdir())
    assert len(built) == 1 and built[0].startswith("group_cg_") and built[0].count(".") == 1, built  # the partial is gone
