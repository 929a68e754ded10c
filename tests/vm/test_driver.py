"""The VM driver's own logic, without a boot: results disks and dying guests."""

from __future__ import annotations

import io
import os
import sys
import tarfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import driver  # noqa: E402


def _tar_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_a_results_disk_cut_short_keeps_the_members_before_the_cut(tmp_path):
    first = _tar_bytes({"./scenarios.json": b"{}", "./doctor.json": b'{"ok": 1}'})
    later = _tar_bytes({"./scenarios.json": b"{}" * 400, "./doctor.json": b'{"ok": 1}',
                        "./bundles/incident.tar.zst": os.urandom(20000)})
    disk = tmp_path / "results.img"
    # the guest died while rewriting the disk: the new tar's head over the old one's tail
    # (cut inside the second member's header: 1,536 bytes are the first member)
    disk.write_bytes(later[:1600] + first[1600:] + b"\0" * 4096)
    dest = tmp_path / "out"
    dest.mkdir()
    driver._unpack_results(str(disk), str(dest))
    assert (dest / "scenarios.json").read_bytes() == b"{}" * 400
    assert not (dest / "bundles").exists()       # what was not written in full is not there


def test_an_empty_results_disk_is_an_error(tmp_path):
    disk = tmp_path / "results.img"
    disk.write_bytes(b"\0" * 8192)
    dest = tmp_path / "out"
    dest.mkdir()
    try:
        driver._unpack_results(str(disk), str(dest))
    except tarfile.ReadError as exc:
        assert "wrote nothing" in str(exc)
    else:
        raise AssertionError("an empty disk was accepted")


def _boot(tmp_path, console: str, name="run") -> driver.Boot:
    run_dir = tmp_path / name
    run_dir.mkdir(exist_ok=True)
    (run_dir / "console.log").write_text(console)
    return driver.Boot("bookworm", str(run_dir), str(run_dir / "console.log"), str(run_dir / "results"),
                       "tcg", 1.0, 0, False, [])


def test_a_panic_is_found_with_the_report_that_led_to_it(tmp_path):
    b = _boot(tmp_path, "guest-init: up\n[  1.0] BUG: unable to handle page fault for address: 0000\n"
                        "[  1.1] RIP: 0010:foo\n[  1.2] Kernel panic - not syncing: Fatal exception in interrupt\n")
    assert b.panicked()
    assert b.kernel_failure().startswith("[  1.0] BUG: unable to handle")
    sound = _boot(tmp_path, "guest-init: up\nscenarios 1.0 s: done\n", name="sound")
    assert not sound.panicked() and sound.kernel_failure() is None


def test_a_guest_that_panicked_is_booted_again_and_the_first_boot_is_named(tmp_path, monkeypatch):
    consoles = iter(["[ 9.0] watchdog: BUG: soft lockup - CPU#0 stuck for 26s! [vm-thrasher:314]\n"
                     "[ 9.1] Kernel panic - not syncing: softlockup: hung tasks\n",
                     "scenarios 1.0 s: done\n"])

    def fake_boot(release, image, run_dir, timeout_s=0):
        os.makedirs(run_dir, exist_ok=True)
        with open(os.path.join(run_dir, "console.log"), "w") as fh:
            fh.write(next(consoles))
        return driver.Boot(release, run_dir, os.path.join(run_dir, "console.log"),
                           os.path.join(run_dir, "results"), "tcg", 5.0, 0, False, [])

    monkeypatch.setattr(driver, "boot", fake_boot)
    run_dir = str(tmp_path / "bookworm-1")
    b = driver.boot_until_sound("bookworm", "img", run_dir, tries=2)
    assert not b.panicked() and b.earlier_failures == 1
    assert os.path.isdir(run_dir + ".try1")
    assert any("soft lockup" in n and "try1" in n for n in b.notes), b.notes


def test_a_guest_that_panics_every_time_is_returned_panicked(tmp_path, monkeypatch):
    def fake_boot(release, image, run_dir, timeout_s=0):
        os.makedirs(run_dir, exist_ok=True)
        with open(os.path.join(run_dir, "console.log"), "w") as fh:
            fh.write("[ 1.0] Kernel panic - not syncing: Fatal exception\n")
        return driver.Boot(release, run_dir, os.path.join(run_dir, "console.log"),
                           os.path.join(run_dir, "results"), "tcg", 5.0, 0, False, [])

    monkeypatch.setattr(driver, "boot", fake_boot)
    b = driver.boot_until_sound("trixie", "img", str(tmp_path / "trixie-1"), tries=2)
    assert b.panicked() and b.earlier_failures == 1
