#!/usr/bin/env bash
# Run the unit tests on the core install (standard library + zstandard, no
# report extra) of each Python 3.9-3.13 found: pyenv's under ~/.pyenv/versions,
# else the system python3. Each gets a virtualenv .venv-core-<version> with
# zstandard and pytest only (scripts/core-venv.sh); the source tree is used
# in place.
# Usage: test-pythons.sh [PYTHON...]
set -eu
cd "$(dirname "$0")/.."

pythons=("$@")
if [ ${#pythons[@]} -eq 0 ]; then
    for minor in 9 10 11 12 13; do
        for p in "$HOME"/.pyenv/versions/3."$minor".*/bin/python; do
            [ -x "$p" ] && pythons+=("$p") && break
        done
    done
fi
[ ${#pythons[@]} -eq 0 ] && pythons=(/usr/bin/python3)

failed=""
for py in "${pythons[@]}"; do
    ver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    core=$(./scripts/core-venv.sh "$py")
    echo "== Python $ver ($py): unit tests on the core install"
    if ! PYTHONPATH="$PWD" "$core" -m pytest -q -p no:cacheprovider tests/unit; then
        failed="$failed $ver"
    fi
done
if [ -n "$failed" ]; then
    echo "test-pythons: failed on Python$failed" >&2
    exit 1
fi
