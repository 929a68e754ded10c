#!/usr/bin/env bash
# Regenerate the sample bundles in samples/ and their rendered reports, on
# this host, as root (cgroup v1 memory controller and swap files needed).
#
#   sample-idle:      10 s on a quiet host.
#   sample-memcg-oom: 20 s during which a process thrashes swap inside a
#                     64 MiB memory cgroup, then a second one outgrows a
#                     64 MiB cgroup without swap and is OOM-killed.
#
# scripts/make-samples.sh --render   re-renders samples/*.md and *.pdf from
# the bundles already there (after a change to the report), collecting
# nothing; any user, no root. SNAPCOLLECT=... picks the command to run.
set -euo pipefail
cd "$(dirname "$0")/.."
SC=${SNAPCOLLECT:-.venv/bin/snapcollect}
CG=/sys/fs/cgroup/memory
tmp=$(mktemp -d)
swapfile=/var/tmp/snapcollect-sample.swap

cleanup() {
    for p in $(jobs -p); do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    swapoff "$swapfile" 2>/dev/null || true
    rm -f "$swapfile"
    for g in sample-thrash sample-oom; do
        [ -d "$CG/$g" ] && { for t in $(cat "$CG/$g/tasks"); do kill -9 "$t" 2>/dev/null || true; done; sleep 0.5; rmdir "$CG/$g" || true; }
    done
    rm -rf "$tmp"
}
trap cleanup EXIT

render() {  # bundle -> samples/<name>.{md,pdf}
    local b=$1 name=$2
    rm -rf "samples/$name.md" "samples/$name.pdf" "samples/$name-charts"
    $SC report "$b" -o "samples/$name.md"
    $SC report "$b" -o "samples/$name.pdf"
}

if [ "${1:-}" = "--render" ]; then
    trap - EXIT; rm -rf "$tmp"     # nothing to clean up: no swap, no cgroup
    render samples/sample-idle.tar.zst sample-idle
    render samples/sample-memcg-oom.tar.zst sample-memcg-oom
    ls -l samples/
    exit 0
fi

rm -f samples/*.tar.zst
$SC collect -d 10 -q -o "$tmp" > "$tmp/idle.out"
mv "$(tail -n1 "$tmp/idle.out")" samples/sample-idle.tar.zst
render samples/sample-idle.tar.zst sample-idle

fallocate -l 512M "$swapfile"; chmod 600 "$swapfile"; mkswap -q "$swapfile"; swapon "$swapfile"
mkdir -p "$CG/sample-thrash" "$CG/sample-oom"
echo $((64 << 20)) > "$CG/sample-thrash/memory.limit_in_bytes"
echo $((64 << 20)) > "$CG/sample-oom/memory.limit_in_bytes"
echo 0 > "$CG/sample-oom/memory.swappiness"

$SC collect -d 20 -q -o "$tmp" > "$tmp/oom.out" &
collector=$!
sleep 5
# A worker cycling through 160 MiB in a 64 MiB cgroup: anonymous pages go
# out to swap and fault back in, again and again.
sh -c "echo \$\$ > $CG/sample-thrash/tasks; exec python3 -c '
import time
buf = bytearray(160 << 20)
end = time.time() + 9
while time.time() < end:
    for i in range(0, len(buf), 4096):
        buf[i] = (buf[i] + 1) & 255
'" &
sleep 6
# A second one that keeps allocating in a cgroup that may not swap.
sh -c "echo \$\$ > $CG/sample-oom/tasks; exec python3 -c '
chunks = []
while True:
    chunks.append(bytearray(8 << 20))
'" || true
wait "$collector"
mv "$(tail -n1 "$tmp/oom.out")" samples/sample-memcg-oom.tar.zst
render samples/sample-memcg-oom.tar.zst sample-memcg-oom
ls -l samples/
