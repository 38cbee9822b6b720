#!/usr/bin/env bash
# The test suite (README's test command). Generated files go to a scratch folder.
# nequip's model suite (tests/nequip_suite) runs in a second session: its fixtures make float64
# the session's default dtype, which must not leak into the rest of the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/setup.sh
scratch="$(mktemp -d)"
export TMPDIR="${TMPDIR:-$scratch}" TORCHINDUCTOR_CACHE_DIR="${TORCHINDUCTOR_CACHE_DIR:-$scratch/inductor}"
if [ "$#" -gt 0 ]; then  # e.g. -m "not slow" (the quick loop) or a test file; the nequip suite runs apart (below)
    exec .venv/bin/python -m pytest -q --ignore=tests/nequip_suite "$@"
fi
.venv/bin/python -m pytest -q --ignore=tests/nequip_suite
.venv/bin/python -m pytest -q -p nequip.utils.unittests.conftest tests/nequip_suite
