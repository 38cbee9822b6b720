#!/usr/bin/env bash
# The import contracts of pyproject.toml ([tool.importlinter]), checked on the package as the
# wheel lays it out: adapters/ becomes freecg_plugin/adapters in a scratch copy.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
tree="$(mktemp -d)"
trap 'rm -rf "$tree"' EXIT
cp -r freecg_plugin "$tree/freecg_plugin"
rm -rf "$tree/freecg_plugin/adapters"
cp -r adapters "$tree/freecg_plugin/adapters"
find "$tree" -name __pycache__ -prune -exec rm -rf {} +
cd "$tree"
PYTHONPATH="$tree" "$root/.venv/bin/lint-imports" "$root/pyproject.toml" --no-cache
