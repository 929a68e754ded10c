#!/usr/bin/env bash
# Build one guest image for the VM test tier from Debian's archive.
#
#   build-image.sh RELEASE OUTDIR
#
# RELEASE is bookworm (kernel 6.1), trixie (6.12) or bullseye (5.10).
# OUTDIR receives rootfs.img (raw ext4), vmlinuz, initrd.img and
# versions.txt (kernel release and package versions baked in). Run as
# root on a Debian host with debootstrap, e2fsprogs, cpio and
# busybox-static. The image holds no project code: the source arrives on
# a disk of its own at boot, so a code change never needs a rebuild.
set -euo pipefail

release=${1:?release}
out=${2:?output directory}
here=$(cd "$(dirname "$0")" && pwd)
mirror=${SNAPCOLLECT_VM_MIRROR:-http://deb.debian.org/debian}
security=${SNAPCOLLECT_VM_SECURITY_MIRROR:-http://deb.debian.org/debian-security}

case "$release" in
    bookworm|trixie|bullseye) ;;
    *) echo "build-image: unknown release $release" >&2; exit 2 ;;
esac

# Everything the collector runs or reads in the guest: the classic tools,
# bcc with its Python bindings, and the collector's two Python modules.
packages="python3-psutil python3-bpfcc bpfcc-tools libbpfcc
  procps sysstat numactl util-linux mount kmod zstd tar xz-utils"
# Debian 11 has no python3-zstandard: there it comes from PyPI, with pip,
# as a bullseye user would install it. The version is pinned so the image
# is the same from one build to the next.
if [ "$release" = bullseye ]; then
    packages="$packages python3-pip"
    pip_zstandard="zstandard==0.23.0"
else
    packages="$packages python3-zstandard"
    pip_zstandard=""
fi

work=$(mktemp -d "${TMPDIR:-/var/tmp}/snapcollect-vm-build-$release-XXXXXX")
root=$work/root
# The chroot gets its own /proc and /sys (debootstrap made its /dev nodes;
# the host's /dev is never bound in): unmount them before anything is
# removed, and never remove across a mount point.
unmount_all() {
    local m
    for m in sys proc; do
        if mountpoint -q "$root/$m"; then umount "$root/$m" || umount -l "$root/$m"; fi
    done
}
cleanup() {
    unmount_all
    if grep -q " $work/" /proc/mounts; then
        echo "build-image: $work still has mounts; left in place" >&2
    elif [ -n "${SNAPCOLLECT_VM_KEEP_BUILD:-}" ]; then
        echo "build-image: build tree kept in $work" >&2
    else
        rm -rf --one-file-system "$work"
    fi
}
trap cleanup EXIT

step() { echo "build-image[$release] $(date +%T) $*" >&2; }

step "debootstrap"
# python3-zstandard cannot go into --include: debootstrap does not resolve
# its virtual dependency. It is installed with apt below.
debootstrap --variant=minbase --include=python3,procps,util-linux,kmod,zstd \
    "$release" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }

# The current kernel's exact headers are often only in the security suite
# (bookworm's 6.1.0-NN), so the guest sees the suite, its updates and its
# security updates, as a Debian host does.
if [ "$release" = bullseye ]; then sec_suite="bullseye-security"; else sec_suite="$release-security"; fi
cat >"$root/etc/apt/sources.list" <<SRC
deb $mirror $release main
deb $mirror $release-updates main
deb $security $sec_suite main
SRC
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod +x "$root/usr/sbin/policy-rc.d"
mount -t proc proc "$root/proc"
mount -t sysfs sys "$root/sys"
in_root() { chroot "$root" env DEBIAN_FRONTEND=noninteractive LC_ALL=C "$@"; }

step "apt"
in_root apt-get update -qq >"$work/apt.log" 2>&1 || { tail -n 20 "$work/apt.log" >&2; exit 1; }
# The kernel the metapackage points at in the newest suite that has it.
kpkg=$(in_root apt-cache depends linux-image-amd64 | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -n1)
kver=${kpkg#linux-image-}
[ -n "$kver" ] || { echo "build-image: no kernel found for $release" >&2; exit 1; }
step "kernel $kver"
in_root apt-get install -y -qq --no-install-recommends $packages "linux-headers-$kver" \
    >>"$work/apt.log" 2>&1 || { tail -n 30 "$work/apt.log" >&2; exit 1; }
if [ -n "$pip_zstandard" ]; then
    # Fetched by the host's pip (its index and certificates), installed
    # in the guest from the file.
    pyver=$(in_root python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    mkdir -p "$root/tmp/wheels"
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$pyver" \
        --platform manylinux2014_x86_64 -d "$root/tmp/wheels" "$pip_zstandard" >>"$work/apt.log" 2>&1 \
        || { tail -n 20 "$work/apt.log" >&2; exit 1; }
    in_root env PIP_FIND_LINKS= pip3 install -q --no-index --find-links /tmp/wheels "$pip_zstandard" \
        >>"$work/apt.log" 2>&1 || { tail -n 20 "$work/apt.log" >&2; exit 1; }
    rm -rf "$root/tmp/wheels"
fi
# The kernel package is unpacked rather than installed: its post-install
# script would build an initramfs of its own that the guest never uses.
(cd "$work" && in_root sh -c "cd /tmp && apt-get download -qq $kpkg" && mv "$root"/tmp/"$kpkg"_*.deb "$work/")
# Unpacked beside the root, then copied in: extracting over the root would
# replace merged-/usr's /lib symlink with a directory.
dpkg-deb -x "$work/$kpkg"_*.deb "$work/kernel"
# (trixie's package puts them under /usr/lib/modules, older ones /lib/modules.)
mkdir -p "$root/lib/modules"
for d in "$work/kernel/usr/lib/modules/$kver" "$work/kernel/lib/modules/$kver"; do
    if [ -d "$d" ]; then cp -a "$d" "$root/lib/modules/"; fi
done
[ -d "$root/lib/modules/$kver/kernel" ] || { echo "build-image: no modules in $kpkg" >&2; exit 1; }
cp "$work/kernel/boot/vmlinuz-$kver" "$work/vmlinuz"
in_root depmod "$kver"
in_root apt-get clean
# The headers must be the running kernel's own, exactly: bcc compiles
# against them. The headers package links them into /lib/modules.
in_root test -e "/lib/modules/$kver/build/include/generated/autoconf.h" \
    || { echo "build-image: headers for $kver missing" >&2; exit 1; }

step "guest init"
install -m 0755 "$here/guest-init" "$root/sbin/snapcollect-vm-init"
echo "vm-$release" >"$root/etc/hostname"
mkdir -p "$root/src" "$root/results"
{
    echo "release=$release"
    echo "kernel=$kver"
    echo "python=$(in_root python3 -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')"
    in_root dpkg-query -W -f='${Package}=${Version}\n' python3-bpfcc libbpfcc \
        python3-psutil sysstat numactl procps "linux-headers-$kver"
    echo "zstandard=$(in_root python3 -c 'import zstandard; print(zstandard.__version__)')"
    echo "linux-image=$(dpkg-deb -f "$work/$kpkg"_*.deb Version)"
} >"$work/versions.txt"
unmount_all

step "initramfs"
# Debian builds virtio and ext4 as modules: the initramfs loads them (in
# dependency order, decompressed because busybox insmod reads plain .ko)
# and hands over to the real root.
ird=$work/initramfs
mkdir -p "$ird/bin" "$ird/lib/modules" "$ird/proc" "$ird/sys" "$ird/dev" "$ird/newroot"
cp /bin/busybox "$ird/bin/busybox"
: >"$ird/modules.order"
for m in virtio_pci virtio_blk crc32c_generic ext4; do
    chroot "$root" modprobe -S "$kver" --show-depends "$m" 2>/dev/null | awk '$1 == "insmod" {print $2}'
done | awk '!seen[$0]++' | while read -r ko; do
    name=$(basename "$ko"); name=${name%.xz}; name=${name%.zst}
    case "$ko" in
        *.xz) xz -dc "$root$ko" >"$ird/lib/modules/$name" ;;
        *.zst) zstd -qdc "$root$ko" >"$ird/lib/modules/$name" ;;
        *) cp "$root$ko" "$ird/lib/modules/$name" ;;
    esac
    echo "$name" >>"$ird/modules.order"
done
install -m 0755 "$here/initramfs-init" "$ird/init"
(cd "$ird" && find . | cpio -o -H newc --quiet | gzip -1) >"$work/initrd.img"

step "rootfs image"
rm -rf "$root/var/lib/apt/lists"/* "$root/usr/share/doc" "$root/usr/share/man"
mkfs.ext4 -q -F -L snapcollect-vm -d "$root" "$work/rootfs.img" 3G

mkdir -p "$out"
mv "$work/rootfs.img" "$work/vmlinuz" "$work/initrd.img" "$work/versions.txt" "$out/"
step "done: $(tr '\n' ' ' <"$out/versions.txt")"
