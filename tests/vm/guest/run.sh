#!/bin/bash
# Runs inside a test guest (called by the image's init with the results
# directory). It comes from the source disk, not the image, so changing a
# scenario costs a boot, not an image build.
set -u
results=${1:?results directory}
here=$(cd "$(dirname "$0")" && pwd)
echo "run.sh: kernel $(uname -r), $(python3 --version 2>&1), $(nproc) CPUs," \
     "NUMA nodes: $(ls -d /sys/devices/system/node/node* | wc -l)"
exec python3 "$here/scenarios.py" "$results"
