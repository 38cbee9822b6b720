#!/usr/bin/env bash
# The test suite (README's test command). Generated files go to a scratch folder.
# nequip's model suite (tests/nequip_suite) runs in a second session: its fixtures make float64
# the session's default dtype, which must not leak into the rest of the tests. MACE's tests and
# the core's (the layer on MACE's e3nn 0.4.4) run in MACE's own environment, .venv-mace (built
# here when missing): mace-torch pins e3nn 0.4.4, which NequIP refuses.
#   scripts/test.sh                  everything
#   scripts/test.sh ARGS...          pytest ARGS in .venv (e.g. -m "not slow", the quick loop)
#   scripts/test.sh mace [ARGS...]   MACE's environment only
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/setup.sh
scratch="$(mktemp -d)"
export TMPDIR="${TMPDIR:-$scratch}" TORCHINDUCTOR_CACHE_DIR="${TORCHINDUCTOR_CACHE_DIR:-$scratch/inductor}"
core=(tests/test_layer.py tests/test_group_cg.py tests/test_group_cg_kernel.py tests/test_abstract_edges.py tests/test_shuffle.py
      tests/test_enhancer.py tests/test_testing_helpers.py)
mace() {
    [ -x .venv-mace/bin/python ] || bash scripts/setup.sh mace
    .venv-mace/bin/python -m pytest -q tests/mace "${core[@]}" "$@"
}
if [ "${1:-}" = mace ]; then
    shift
    mace "$@"
    exit
fi
if [ "$#" -gt 0 ]; then  # e.g. -m "not slow" (the quick loop) or a test file; the nequip suite runs apart (below)
    exec .venv/bin/python -m pytest -q --ignore=tests/nequip_suite --ignore=tests/mace "$@"
fi
.venv/bin/python -m pytest -q --ignore=tests/nequip_suite --ignore=tests/mace
.venv/bin/python -m pytest -q -p nequip.utils.unittests.conftest tests/nequip_suite
mace
