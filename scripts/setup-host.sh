#!/usr/bin/env bash
# Install what snapcollect and its tests need on a Debian 12 host, as root.
# Without root it only says what it would need and carries on: the Python
# part still installs, and the collector runs without BPF.
set -eu

APT_PACKAGES="python3 python3-venv python3-pip python3-bpfcc bpfcc-tools libbpfcc
  linux-headers-amd64 sysstat numactl procps util-linux poppler-utils
  libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz0b fonts-dejavu-core chromium
  gcc libc6-dev make zstd python3-zstandard"

# --vm: what the VM tier (tests/vm) needs to build and boot its guests.
if [ "${1:-}" = "--vm" ]; then
    # (qemu's recommended packages are a desktop's worth: left out)
    APT_PACKAGES="qemu-system-x86 qemu-utils debootstrap cpio e2fsprogs busybox-static xz-utils zstd"
    APT_OPTS="--no-install-recommends"
fi

if [ "$(id -u)" != 0 ]; then
    echo "setup-host: not root; skipping system packages ($APT_PACKAGES)" >&2
    exit 0
fi

missing=""
for p in $APT_PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "setup-host: installing$missing" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${APT_OPTS:-} $missing >/dev/null
fi
[ "${1:-}" = "--vm" ] && exit 0

# bcc compiles against kernel headers. When the running kernel has none
# (custom kernels), point it at the newest Debian headers installed: bcc
# needs both build/ (generated, arch) and source/ (common) trees.
krel=$(uname -r)
if [ ! -e "/lib/modules/$krel/build/include/generated/autoconf.h" ]; then
    arch=$(ls -d /usr/src/linux-headers-*-amd64 2>/dev/null | sort -V | tail -n1 || true)
    common=$(ls -d /usr/src/linux-headers-*-common 2>/dev/null | sort -V | tail -n1 || true)
    if [ -n "$arch" ] && [ -n "$common" ]; then
        mkdir -p "/lib/modules/$krel"
        ln -sfn "$arch" "/lib/modules/$krel/build"
        ln -sfn "$common" "/lib/modules/$krel/source"
        echo "setup-host: no headers for $krel; using $(basename "$arch") for BPF" >&2
    fi
fi

# Tracepoints are read through tracefs.
if [ -d /sys/kernel/tracing ] && ! [ -e /sys/kernel/tracing/events ]; then
    mount -t tracefs nodev /sys/kernel/tracing || echo "setup-host: could not mount tracefs" >&2
fi
