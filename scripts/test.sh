#!/usr/bin/env bash
# The test suite (README's test command). Generated files go to a scratch folder.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/setup.sh
scratch="$(mktemp -d)"
export TMPDIR="${TMPDIR:-$scratch}" TORCHINDUCTOR_CACHE_DIR="${TORCHINDUCTOR_CACHE_DIR:-$scratch/inductor}"
exec .venv/bin/python -m pytest -q "$@"
