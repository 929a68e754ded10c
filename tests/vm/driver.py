"""Guest images and boots for the VM test tier.

A guest is a Debian release's own kernel and user space (built by
image/build-image.sh from Debian's archive), booted under qemu with two
vCPUs, 2 GiB in two NUMA nodes and three virtio disks:

- vda: a throw-away qcow2 overlay on the cached root image;
- vdb: a raw results disk, onto which the guest writes a tar of its
  results directory before it powers off;
- vdc: a read-only tar of the source tree (snapcollect/ and
  tests/vm/guest/), so that a code change costs a boot, not a build.

Images are cached outside the repository, in $SNAPCOLLECT_VM_CACHE
(default /var/cache/snapcollect-vm), one directory per release named
after a hash of the recipe files: changing the recipe builds a new one.

Run directly for a manual boot::

    python3 tests/vm/driver.py build bookworm
    python3 tests/vm/driver.py boot bookworm /tmp/out
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
IMAGE_DIR = os.path.join(HERE, "image")
RELEASES = ("bookworm", "trixie", "bullseye")
RECIPE_FILES = ("build-image.sh", "guest-init", "initramfs-init")
IMAGE_FILES = ("rootfs.img", "vmlinuz", "initrd.img", "versions.txt")
HOST_PACKAGES = ("qemu-system-x86", "qemu-utils", "debootstrap", "cpio", "e2fsprogs", "busybox-static",
                 "xz-utils", "zstd")
HOST_COMMANDS = ("qemu-system-x86_64", "qemu-img", "debootstrap", "cpio", "mkfs.ext4", "busybox")

# Two NUMA nodes of unequal size: node 1 is small so that an allocation
# preferring it spills onto node 0 after a few hundred MiB, which the
# emulated CPU writes in seconds rather than a minute.
NODE_MB = (1536, 512)
# softlockup_panic: a guest kernel that locks up under emulation ends its
# boot at once (panic=-1 and -no-reboot stop qemu) instead of holding the
# run until the host's timeout.
CMDLINE = "console=ttyS0 panic=-1 softlockup_panic=1 psi=1 loglevel=4 mitigations=off"
RESULTS_DISK_MB = 512
BOOT_TIMEOUT_S = float(os.environ.get("SNAPCOLLECT_VM_BOOT_TIMEOUT", "1200"))
# A guest whose kernel died (panic, oops, lockup) is booted again, up to
# this many boots in all; every failed boot is kept and reported. A boot
# that only ran out of time is not: the next one would be as slow.
BOOT_TRIES = int(os.environ.get("SNAPCOLLECT_VM_BOOT_TRIES", "3"))
KERNEL_FAILURES = ("Kernel panic", "soft lockup", "hard LOCKUP", "BUG: unable to handle", "Oops:",
                   "general protection fault", "blocked for more than")
KVM_PROBE_S = 20
# The source the guest needs: the collector, and the guest-side scenarios.
SOURCE_PARTS = ("snapcollect", "tests/vm/guest", "pyproject.toml")


def cache_root() -> str:
    return os.environ.get("SNAPCOLLECT_VM_CACHE", "/var/cache/snapcollect-vm")


def recipe_hash(release: str) -> str:
    h = hashlib.sha256(release.encode())
    for name in RECIPE_FILES:
        with open(os.path.join(IMAGE_DIR, name), "rb") as fh:
            h.update(name.encode() + b"\0" + fh.read() + b"\0")
    return h.hexdigest()[:16]


def image_dir(release: str) -> str:
    return os.path.join(cache_root(), f"{release}-{recipe_hash(release)}")


def missing_host_facilities() -> list[str]:
    """What this host lacks to build and boot guests (empty when all is there)."""
    out = [f"command {c}" for c in HOST_COMMANDS if shutil.which(c) is None]
    if os.geteuid() != 0:
        out.insert(0, "root (debootstrap and chroot)")
    return out


def install_host_packages() -> None:
    """apt-get install what the tier needs, when root and something is missing."""
    if os.geteuid() != 0 or not missing_host_facilities():
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], env=env, check=False)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *HOST_PACKAGES],
                   env=env, check=True, stdout=subprocess.DEVNULL)


def ensure_image(release: str, log=sys.stderr) -> tuple[str, float | None]:
    """The cached image directory for ``release``, built when absent; and the build time (None: cached)."""
    d = image_dir(release)
    if all(os.path.exists(os.path.join(d, f)) for f in IMAGE_FILES):
        return d, None
    os.makedirs(cache_root(), exist_ok=True)
    with open(os.path.join(cache_root(), f".{release}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)      # one build per release, even with parallel runs
        if all(os.path.exists(os.path.join(d, f)) for f in IMAGE_FILES):
            return d, None
        t = time.monotonic()
        tmp = d + f".partial-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        r = subprocess.run([os.path.join(IMAGE_DIR, "build-image.sh"), release, tmp],
                           stdout=log, stderr=subprocess.STDOUT)
        if r.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise RuntimeError(f"building the {release} image failed (exit {r.returncode})")
        os.rename(tmp, d)
        _drop_stale_images(release, keep=d)
        return d, round(time.monotonic() - t, 1)


def _drop_stale_images(release: str, keep: str) -> None:
    for name in os.listdir(cache_root()):
        path = os.path.join(cache_root(), name)
        if name.startswith(release + "-") and path != keep and os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)


def read_versions(directory: str) -> dict[str, str]:
    """versions.txt of an image (or of a run: a copy of its image's)."""
    with open(os.path.join(directory, "versions.txt")) as fh:
        return dict(line.rstrip("\n").split("=", 1) for line in fh if "=" in line)


# Test programs built here and put on the source disk: the guests have no
# gcc. Static, so that one binary runs under each guest's C library.
GUEST_PROGRAMS = {"tests/vm/guest/bin/alloc_pattern": "tests/live/programs/alloc_pattern.c"}


def build_guest_program(source: str, out: str) -> bool:
    """gcc -static of ``source``; False (the guest step records why) when this host cannot."""
    try:
        r = subprocess.run(["gcc", "-static", "-O1", "-fno-omit-frame-pointer", "-o", out, source],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


def write_source_tar(path: str) -> None:
    """A tar of the parts of the source tree the guest runs, with its test programs."""
    def keep(info: tarfile.TarInfo):
        base = os.path.basename(info.name)
        if base == "__pycache__" or base.endswith(".pyc"):
            return None
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        return info

    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        for part in SOURCE_PARTS:
            tar.add(os.path.join(REPO, part), arcname=part, filter=keep)
        with tempfile.TemporaryDirectory() as tmp:
            for arcname, source in GUEST_PROGRAMS.items():
                out = os.path.join(tmp, os.path.basename(arcname))
                if build_guest_program(os.path.join(REPO, source), out):
                    tar.add(out, arcname=arcname, filter=keep)
    # A disk's size must be a whole number of 512-byte sectors (tar's
    # records already are; this keeps it so whatever the tar module does).
    size = os.path.getsize(path)
    if size % 512:
        with open(path, "ab") as fh:
            fh.write(b"\0" * (512 - size % 512))


@dataclass
class Boot:
    release: str
    run_dir: str
    console: str
    results: str
    accel: str
    seconds: float
    exit_code: int | None
    timed_out: bool
    notes: list[str] = field(default_factory=list)
    earlier_failures: int = 0      # boots before this one whose guest kernel died or timed out

    def kernel_failure(self) -> str | None:
        """The guest kernel's first sign of dying (panic, oops, lockup), with what
        the console printed just before it; None when it ran soundly."""
        try:
            with open(self.console, errors="replace") as fh:
                lines = fh.readlines()
        except OSError:
            return None
        for i, line in enumerate(lines):
            if any(sign in line for sign in KERNEL_FAILURES):
                start = i
                # back to the start of the report (the "----[ cut here" or "BUG:" line)
                for j in range(i, max(-1, i - 40), -1):
                    if "cut here" in lines[j] or "BUG:" in lines[j] or "WARNING:" in lines[j]:
                        start = j
                        break
                return "".join(lines[start:start + 50])
        return None

    def panicked(self) -> bool:
        """The guest kernel panicked (a soft lockup too: softlockup_panic=1). A warning or
        a hung-task report on a run that finished leaves its results valid."""
        return _console_has(self.run_dir, "Kernel panic")

    def console_tail(self, lines: int = 60) -> str:
        try:
            with open(self.console, errors="replace") as fh:
                return "".join(fh.readlines()[-lines:])
        except OSError as exc:
            return f"(no console log: {exc})"


def qemu_argv(image: str, run_dir: str, accel: str, guest_timeout: int = 600) -> list[str]:
    m0, m1 = NODE_MB
    if accel == "kvm":
        cpu = ["-accel", "kvm", "-cpu", "host"]
    else:
        cpu = ["-accel", "tcg,thread=multi", "-cpu", "max"]
    return ["qemu-system-x86_64", *cpu, "-smp", "2", "-m", str(m0 + m1),
            "-object", f"memory-backend-ram,size={m0}M,id=m0",
            "-object", f"memory-backend-ram,size={m1}M,id=m1",
            "-numa", "node,nodeid=0,cpus=0,memdev=m0", "-numa", "node,nodeid=1,cpus=1,memdev=m1",
            "-kernel", os.path.join(image, "vmlinuz"), "-initrd", os.path.join(image, "initrd.img"),
            "-append", f"{CMDLINE} snapcollect.timeout={guest_timeout}",
            "-drive", f"file={os.path.join(run_dir, 'root.qcow2')},format=qcow2,if=virtio",
            "-drive", f"file={os.path.join(run_dir, 'results.img')},format=raw,if=virtio",
            "-drive", f"file={os.path.join(run_dir, 'source.tar')},format=raw,if=virtio,readonly=on",
            "-nic", "none", "-display", "none", "-monitor", "none",
            "-serial", f"file:{os.path.join(run_dir, 'console.log')}", "-no-reboot"]


def _prepare_run(image: str, run_dir: str) -> None:
    os.makedirs(run_dir, exist_ok=True)
    for name in ("root.qcow2", "results.img", "console.log"):
        if os.path.exists(os.path.join(run_dir, name)):
            os.unlink(os.path.join(run_dir, name))
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b",
                    os.path.join(image, "rootfs.img"), os.path.join(run_dir, "root.qcow2")], check=True)
    with open(os.path.join(run_dir, "results.img"), "wb") as fh:
        fh.truncate(RESULTS_DISK_MB << 20)
    write_source_tar(os.path.join(run_dir, "source.tar"))
    shutil.copy(os.path.join(image, "versions.txt"), run_dir)    # what this run booted


def _console_has(run_dir: str, text: str) -> bool:
    try:
        with open(os.path.join(run_dir, "console.log"), "rb") as fh:
            return text.encode() in fh.read()
    except OSError:
        return False


def _kvm_verdict_path() -> str:
    # Whether KVM boots is a property of this host as booted: remembered
    # until the host reboots (its boot_id changes).
    try:
        with open("/proc/sys/kernel/random/boot_id") as fh:
            boot_id = fh.read().strip()
    except OSError:
        boot_id = "unknown"
    return os.path.join(cache_root(), f".kvm-{boot_id}")


def choose_accel(image: str, run_dir: str) -> tuple[str, str]:
    """"kvm" only when a KVM guest really reaches its init here; else "tcg". And why."""
    forced = os.environ.get("SNAPCOLLECT_VM_ACCEL")
    if forced in ("kvm", "tcg"):
        return forced, f"SNAPCOLLECT_VM_ACCEL={forced}"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg", "no usable /dev/kvm"
    verdict = _kvm_verdict_path()
    if not os.path.exists(verdict):
        # On some machines a KVM guest hangs at "Booting from ROM" for ever:
        # give it a short time to print the guest init's first line.
        probe = os.path.join(run_dir, "kvm-probe")
        _prepare_run(image, probe)
        proc = subprocess.Popen(qemu_argv(image, probe, "kvm"), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        end = time.monotonic() + KVM_PROBE_S
        ok = False
        while time.monotonic() < end and proc.poll() is None:
            if _console_has(probe, "guest-init:"):
                ok = True
                break
            time.sleep(0.5)
        proc.kill()
        proc.wait()
        shutil.rmtree(probe, ignore_errors=True)
        with open(verdict, "w") as fh:
            fh.write("works\n" if ok else "hangs\n")
    with open(verdict) as fh:
        works = fh.read().strip() == "works"
    if works:
        return "kvm", "a KVM guest reached its init on this host"
    return "tcg", f"a KVM guest did not reach its init within {KVM_PROBE_S} s on this host (probed once per host boot)"


def boot(release: str, image: str, run_dir: str, timeout_s: float = BOOT_TIMEOUT_S) -> Boot:
    """Boot ``release`` once; the guest runs tests/vm/guest/run.sh; results land in run_dir/results."""
    accel, why = choose_accel(image, run_dir)
    _prepare_run(image, run_dir)
    t = time.monotonic()
    with open(os.path.join(run_dir, "qemu.stderr"), "w") as err:
        # The guest stops its scenarios 60 s before the host gives up on it,
        # so that its results still reach the results disk.
        argv = qemu_argv(image, run_dir, accel, guest_timeout=max(60, int(timeout_s) - 60))
        proc = subprocess.Popen(argv, stdout=err, stderr=err)
        try:
            code, timed_out = proc.wait(timeout=timeout_s), False
        except subprocess.TimeoutExpired:
            proc.kill()
            code, timed_out = proc.wait(), True
    seconds = round(time.monotonic() - t, 1)
    results = os.path.join(run_dir, "results")
    shutil.rmtree(results, ignore_errors=True)
    os.makedirs(results)
    notes = [f"accelerator {accel}: {why}"]
    try:
        _unpack_results(os.path.join(run_dir, "results.img"), results)
    except (tarfile.TarError, OSError) as exc:
        notes.append(f"results disk unreadable: {exc}")
    os.unlink(os.path.join(run_dir, "root.qcow2"))   # the overlay is throw-away
    return Boot(release, run_dir, os.path.join(run_dir, "console.log"), results, accel, seconds, code,
                timed_out, notes)


def boot_until_sound(release: str, image: str, run_dir: str, tries: int = BOOT_TRIES) -> Boot:
    """``boot``, again when the guest kernel died.

    Emulated guests are slow and the host is shared; a guest kernel that
    panics or locks up under TCG says nothing about the collector unless it
    happens again. Each failed boot's directory is kept as RUN_DIR.tryN, and
    the returned Boot's notes say what happened to it.
    """
    failures = []
    for attempt in range(1, max(1, tries) + 1):
        b = boot(release, image, run_dir)
        first = (b.kernel_failure() or "").strip().splitlines()[:1]
        if not b.panicked() or attempt == tries:
            if first:
                b.notes.append(f"the guest kernel reported: {first[0].strip()}")
            b.notes.extend(failures)
            b.earlier_failures = len(failures)
            return b
        why = "kernel panic" + (f": {first[0].strip()}" if first else "")
        kept = f"{run_dir}.try{attempt}"
        shutil.rmtree(kept, ignore_errors=True)
        os.rename(run_dir, kept)
        failures.append(f"boot {attempt} failed after {b.seconds} s ({why}); kept in {kept}")
        print(f"vm: {release} {failures[-1]}; booting again", file=sys.stderr)
    raise AssertionError("unreachable")


def _unpack_results(disk: str, dest: str) -> None:
    """The guest's tar, read as untrusted: regular files and directories only, inside ``dest``.

    The guest rewrites the disk after each step; one that died while writing
    leaves a tar whose tail is cut or stale: the members before it still count.
    """
    with open(disk, "rb") as fh:
        head = fh.read(512)
    if not head.strip(b"\0"):
        raise tarfile.ReadError("the guest wrote nothing")
    try:
        _extract(disk, dest)
    except (tarfile.TarError, EOFError, OSError) as exc:
        if not os.listdir(dest):
            raise
        with open(os.path.join(dest, "UNPACK-ERROR"), "w") as fh:
            fh.write(f"{type(exc).__name__}: {exc}\n")


def _extract(disk: str, dest: str) -> None:
    with tarfile.open(disk, "r:") as tar:
        for member in tar:
            name = os.path.normpath(member.name)
            if name.startswith(("/", "..")) or not (member.isfile() or member.isdir()):
                continue
            target = os.path.join(dest, name)
            if member.isdir():
                os.makedirs(target, exist_ok=True)
                continue
            os.makedirs(os.path.dirname(target), exist_ok=True)
            src = tar.extractfile(member)
            with open(target, "wb") as out:
                shutil.copyfileobj(src, out)


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "build":
        d, took = ensure_image(argv[1])
        print(d, f"built in {took} s" if took is not None else "cached")
        return 0
    if len(argv) >= 3 and argv[0] == "boot":
        d, _ = ensure_image(argv[1])
        b = boot_until_sound(argv[1], d, argv[2])
        print(f"{b.release}: exit {b.exit_code}, {b.seconds} s, timed out: {b.timed_out}; "
              f"{'; '.join(b.notes)}; results in {b.results}")
        return 0 if b.exit_code == 0 and not b.timed_out else 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
