#!/usr/bin/env bash
# Print the python of .venv-core-<version>, the core install (zstandard and
# pytest, no report extra) for interpreter PYTHON, creating it if needed.
# Usage: core-venv.sh PYTHON
set -eu
cd "$(dirname "$0")/.."
py=$1
ver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
venv="$PWD/.venv-core-$ver"
if [ ! -x "$venv/bin/python" ] || [ ! -e "$venv/.installed" ]; then
    "$py" -m venv "$venv" >&2
    "$venv/bin/python" -m pip install -q zstandard pytest >&2
    touch "$venv/.installed"
fi
echo "$venv/bin/python"
