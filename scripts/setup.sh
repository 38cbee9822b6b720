#!/usr/bin/env bash
# Create .venv/ at the repository root with Python >= 3.12 and install freecg-plugin with all
# extras (hosts, MD, tests). Idempotent: an existing .venv with Python >= 3.12 is reused.
# `scripts/setup.sh mace` builds .venv-mace/ instead: MACE's environment (freecg-plugin[mace] and
# the tests), apart because mace-torch pins e3nn 0.4.4 and NequIP needs e3nn >= 0.6.
# Override the interpreter with PYTHON=/path/to/python3.12.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  "") venv=.venv extras=all ;;
  mace) venv=.venv-mace extras=mace,test ;;
  *) echo "usage: scripts/setup.sh [mace]" >&2; exit 2 ;;
esac

is_ok() { "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1; }

find_python() {
  if [ -n "${PYTHON:-}" ]; then
    is_ok "$PYTHON" && { echo "$PYTHON"; return; }
    echo "PYTHON=$PYTHON is not Python >= 3.12" >&2; return 1
  fi
  local candidate
  for candidate in python3.14 python3.13 python3.12 python3 python; do
    command -v "$candidate" >/dev/null 2>&1 && is_ok "$candidate" && { command -v "$candidate"; return; }
  done
  # pyenv installs answer only when asked for by version
  if command -v pyenv >/dev/null 2>&1; then
    local version
    for version in $(pyenv versions --bare 2>/dev/null | grep -E '^3\.(1[2-9])(\.[0-9]+)?$' | sort -rV); do
      candidate="$(pyenv root)/versions/$version/bin/python3"
      is_ok "$candidate" && { echo "$candidate"; return; }
    done
  fi
  for candidate in /usr/local/bin/python3.1[2-9] /usr/bin/python3.1[2-9] "$HOME"/.pyenv/versions/3.1[2-9]*/bin/python3; do
    [ -x "$candidate" ] && is_ok "$candidate" && { echo "$candidate"; return; }
  done
  echo "no Python >= 3.12 found; install one or set PYTHON=/path/to/python3.12" >&2
  return 1
}

if [ -x $venv/bin/python ] && is_ok $venv/bin/python; then
  echo "using existing $venv ($($venv/bin/python --version))"
else
  rm -rf $venv
  py="$(find_python)"
  echo "creating $venv with $py ($("$py" --version))"
  "$py" -m venv $venv
fi
$venv/bin/python -m pip install --quiet --upgrade pip
# torch first, pinned: the one wheel all host packages agree on
$venv/bin/python -m pip install --quiet "torch==2.13.0"
$venv/bin/python -m pip install --quiet -e ".[$extras]"
$venv/bin/python -c 'import freecg_plugin, torch, e3nn; print("freecg-plugin", freecg_plugin.__version__, "| torch", torch.__version__, "| e3nn", e3nn.__version__)'
