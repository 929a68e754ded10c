"""Secrets masked and names redacted before anything reaches the bundle.

The pure functions (mask_secrets, Redactor) on command lines as the
kernel and pmap show them, on kernel tables they must not damage, and the
bundle writer's filter: no original string in any member of the archive,
checksums of what was written.
"""

from __future__ import annotations

import io
import json
import tarfile

import pytest
import zstandard

from snapcollect.bundle import open_bundle
from snapcollect.bundle.writer import BundleWriter
from snapcollect.collect.mask_secrets import mask_secrets
from snapcollect.collect.privacy import Privacy, is_kernel_table
from snapcollect.collect.redact import PATHS_AND_ADDRESSES, Redactor

# -- secrets ------------------------------------------------------------------------

MASKED = [
    # (text, secret that must go, what must stay)
    ("mysql\0-u\0root\0-pS3cretPassw0rd\0db\0", "S3cretPassw0rd", "mysql\0-u\0root\0-p***\0db\0"),
    ("12345:   mysqldump -pS3cret --all", "S3cret", "12345:   mysqldump -p*** --all"),
    ("app --password=hunter2 -v", "hunter2", "app --password=*** -v"),
    ("app\0--password\0hunter2\0-v", "hunter2", "app\0--password\0***\0-v"),
    ("cli --token tok-123 --secret sss --api-key=K-99 --db-passwd x1",
     "tok-123", "cli --token *** --secret *** --api-key=*** --db-passwd ***"),
    ("run secret=abc password=def token=ghi", "abc", "run secret=*** password=*** token=***"),
    ("PGPASSWORD=pw1 AWS_SECRET_ACCESS_KEY=wJalr psql", "wJalr", "PGPASSWORD=*** AWS_SECRET_ACCESS_KEY=*** psql"),
    ("git clone https://bob:gh_pat42@github.com/x/y", "gh_pat42", "git clone https://bob:***@github.com/x/y"),
    ("curl -H Authorization: Bearer eyJhbGci.payload.sig u", "eyJhbGci", "curl -H Authorization: Bearer *** u"),
    ("curl -H 'Authorization: Basic dXNlcjpwYXNz'", "dXNlcjpwYXNz", "curl -H 'Authorization: Basic ***'"),
    ("wget --header=Bearer abcdef123456", "abcdef123456", "wget --header=Bearer ***"),
    ("deploy AKIAIOSFODNN7EXAMPLE now", "IOSFODNN7EXAMPLE", "deploy AKIA*** now"),
    ("GET /x?a=1&token=T0K3N&b=2", "T0K3N", "GET /x?a=1&token=***&b=2"),
]


@pytest.mark.parametrize("text,secret,want", MASKED)
def test_password_like_arguments_are_masked(text, secret, want):
    got = mask_secrets(text)
    assert secret not in got
    assert got == want
    assert mask_secrets(got) == got          # masking twice changes nothing


KEPT = [
    "find / -path /x -print0 -prune -perm 644",
    "gcc -pthread -pipe -pedantic -O2",
    "git commit --author Alice --passive",
    "app --password-file /etc/app/pw --token-file=/run/t --no-password next",
    "vmstat -p sda1",
    "MemTotal:       16384 kB\nMemFree:          512 kB\n",
    "7f0c1000-7f0c2000 r-xp 00000000 08:01 1234 /usr/lib/x86_64-linux-gnu/libkeyutils.so.1",
    "docker login --password-stdin",
    "https://example.com/path",
]


@pytest.mark.parametrize("text", KEPT)
def test_what_is_not_a_secret_is_kept(text):
    assert mask_secrets(text) == text


def test_not_utf8_is_kept_losslessly():
    raw = b"tool\0-pS3cret\0\xff\xfe\0"
    got = mask_secrets(raw.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")
    assert got == b"tool\0-p***\0\xff\xfe\0"


# -- redaction ----------------------------------------------------------------------

def _redactor(key=b"k" * 32):
    return Redactor(key, hosts=["web1", "web1.example.com", "vm"], users=["alice", "x"],
                    homes=["/home/alice", "/srv/bob"])


def test_the_same_value_gets_the_same_token_and_another_key_another():
    r = _redactor()
    a = r("ssh alice@web1.example.com 10.0.0.7")
    b = r("10.0.0.7 alice WEB1.Example.COM")
    assert a.split()[-1] == b.split()[0]
    assert a.split()[1] == f"{r.token('user', 'alice')}@{r.token('host', 'web1.example.com')}"
    assert b.split()[2] == r.token("host", "web1.example.com")
    other = _redactor(b"o" * 32)
    assert other("10.0.0.7") != r("10.0.0.7")
    assert all(s not in a + b for s in ("alice", "web1", "10.0.0.7"))


def test_names_addresses_and_homes_are_replaced():
    r = _redactor()
    text = ("cmd /home/alice/bin/app /home/carol/x /srv/bob/data fe80::1c:2 ::1 2001:db8:0:0:1:2:3:4 "
            "::ffff:192.168.1.20 255.255.255.0 //web1/share vm")
    got = r(text)
    for s in ("alice", "carol", "/srv/bob", "fe80::1c:2", "2001:db8", "192.168.1.20", "255.255.255.0",
              "//web1/", " vm"):
        assert s not in got, s
    assert got.startswith("cmd /" + r.token("home", "/home/alice") + "/bin/app ")
    assert r.token("home", "/home/carol") in got
    # The one-letter user is not redacted (it would turn every text into tokens), and said so.
    assert r.skipped_short == 1 and r("x y z") == "x y z"


def test_what_only_looks_like_names_or_addresses_is_kept():
    r = _redactor()
    kept = ("/proc/sys/vm/swappiness vmstat node vm_stat alicex xalice 12:34:56 08:01 "
            "52:54:00:12:34:56 std::swap add::bad 1.2.3.400 6.18.44 /home/alicex? /homes/a")
    got = r(kept)
    assert "/proc/sys/vm/swappiness vmstat node vm_stat alicex xalice 12:34:56 08:01" in got
    assert "52:54:00:12:34:56 std::swap add::bad 1.2.3.400 6.18.44" in got
    assert "/homes/a" in got
    # A JSON field name equal to a user name is ours, the value is not.
    assert json.loads(r('{"alice": "alice"}')) == {"alice": r.token("user", "alice")}


def test_kernel_tables_keep_their_words():
    r = _redactor()
    zoneinfo = "Node 0, zone   Normal\n  pages free     1234\n  vm stats threshold: 4\n"
    assert r(zoneinfo, PATHS_AND_ADDRESSES) == zoneinfo
    swaps = "Filename\tType\n/home/alice/swapfile file 1024 0 -2\n"
    assert "/home/alice" not in r(swaps, PATHS_AND_ADDRESSES)
    assert is_kernel_table("proc/zoneinfo@start") and is_kernel_table("series/proc/vmstat")
    assert is_kernel_table("sys/node/node0/meminfo")
    assert not is_kernel_table("procs/123/cmdline") and not is_kernel_table("kmsg")


# -- the writer's filter ----------------------------------------------------------


class _Args:
    keep_secrets = False
    redact = False


def _archive_bytes(path: str) -> bytes:
    with open(path, "rb") as fh:
        raw = zstandard.ZstdDecompressor().stream_reader(fh).read()
    # Every member, decompressed: the raw tar holds names, headers and data.
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        assert len(tar.getmembers()) > 3
    return raw


def _write(path: str, privacy: Privacy) -> str:
    w = BundleWriter(path, {"host": "web1", "privacy": privacy.manifest()}, scrub=privacy.scrub)
    w.add_file("procs/42/cmdline", b"mysql\0-u\0alice\0-pS3cretPassw0rd\0--host=10.9.8.7\0")
    w.add_file("procs/42/pmap-x", "42:   mysql -u alice -pS3cretPassw0rd --host=10.9.8.7\n")
    w.add_file("proc/zoneinfo@start", "  vm stats threshold: 4\n")
    w.add_tick(0, 1.0, 1.0, {"procs": "42 (mysql) S 1\t1000\t0\n", "proc/meminfo": "MemTotal: 1 kB\n"})
    w.add_records("kmsg", [{"msg": "app[42]: login alice from 10.9.8.7 password=hunter2", "seq": 1}])
    w.add_missing("procs/43/smaps", "timeout", "blocked reading /home/alice/x --token=T0K")
    return w.close(complete=True)


def test_writer_masks_secrets_in_every_member(tmp_path):
    privacy = Privacy.for_args(_Args())
    path = _write(str(tmp_path / "b.tar.zst"), privacy)
    raw = _archive_bytes(path)
    for secret in (b"S3cretPassw0rd", b"hunter2", b"T0K"):
        assert secret not in raw, secret
    b = open_bundle(path)
    assert b.manifest["privacy"] == {"secrets": "masked", "redacted": False}
    entry = next(a for a in b.manifest["artifacts"] if a["name"] == "procs/42/cmdline")
    data = b"mysql\0-u\0alice\0-p***\0--host=10.9.8.7\0"
    assert entry["bytes"] == len(data)
    assert b.data("procs/42/cmdline") == data


def test_keep_secrets_keeps_them_and_says_so(tmp_path):
    args = _Args()
    args.keep_secrets = True
    privacy = Privacy.for_args(args)
    assert privacy.scrub is None
    path = _write(str(tmp_path / "b.tar.zst"), privacy)
    assert b"S3cretPassw0rd" in _archive_bytes(path)
    assert open_bundle(path).manifest["privacy"]["secrets"] == "kept (--keep-secrets)"


def test_redact_leaves_no_original_in_the_archive(tmp_path, monkeypatch):
    import snapcollect.collect.privacy as privacy_mod

    monkeypatch.setattr(privacy_mod, "host_names", lambda: ["web1"])
    monkeypatch.setattr(privacy_mod, "users_and_homes", lambda: (["alice"], ["/home/alice"]))
    args = _Args()
    args.redact = True
    privacy = Privacy.for_args(args)
    path = _write(str(tmp_path / "b.tar.zst"), privacy)
    raw = _archive_bytes(path)
    for original in (b"web1", b"alice", b"10.9.8.7", b"/home/", b"S3cretPassw0rd", b"hunter2"):
        assert original not in raw, original
    b = open_bundle(path)
    assert b.manifest["privacy"]["redacted"] is True
    assert b.manifest["host"] == privacy.host_label("web1") != "web1"
    # The kernel table kept its words; the tick's texts were filtered too.
    assert b.data("proc/zoneinfo@start") == b"  vm stats threshold: 4\n"
    assert privacy.redactor.token("user", "alice").encode() in raw


def test_kernel_tables_and_process_lines_are_not_scanned_for_secrets():
    scrub = Privacy.for_args(_Args()).scrub
    line = "42 (-pS3cret) S 1 42 42 0 -1\t0\t0\n"
    assert scrub(line, "series/procs") == line
    assert scrub("x -pS3cret", "proc/meminfo@start") == "x -pS3cret"
    assert scrub("x -pS3cret", "procs/42/cmdline") == "x -p***"
    assert scrub("x -pS3cret", "kmsg") == "x -p***"


def test_show_says_what_was_done(tmp_path, monkeypatch):
    from snapcollect.bundle.show import format_show
    import snapcollect.collect.privacy as privacy_mod

    path = _write(str(tmp_path / "a.tar.zst"), Privacy.for_args(_Args()))
    assert "privacy:   secrets masked; not redacted" in format_show(open_bundle(path))
    monkeypatch.setattr(privacy_mod, "host_names", lambda: ["web1"])
    monkeypatch.setattr(privacy_mod, "users_and_homes", lambda: ([], []))
    args = _Args()
    args.redact = True
    path = _write(str(tmp_path / "b.tar.zst"), Privacy.for_args(args))
    assert "secrets masked; host, user names, addresses and home paths redacted" in format_show(open_bundle(path))


def test_process_tables_are_left_to_paths_and_users(monkeypatch):
    import snapcollect.collect.privacy as privacy_mod

    plain = Privacy.for_args(_Args())
    # A smaps needs no decoding for masking alone: no command line in it.
    assert not plain.applies("procs/42/smaps") and not plain.applies("series/procs")
    assert plain.applies("procs/42/cmdline") and plain.applies("procs/42/pmap-x") and plain.applies("")
    monkeypatch.setattr(privacy_mod, "host_names", lambda: ["rd"])
    monkeypatch.setattr(privacy_mod, "users_and_homes", lambda: (["alice"], []))
    args = _Args()
    args.redact = True
    red = Privacy.for_args(args)
    assert red.applies("procs/42/smaps")
    smaps = "7f00-7f01 r--p 00000000 08:01 9 /var/lib/alice/db\nVmFlags: rd wr mr mw me\n"
    got = red(smaps, "procs/42/smaps")
    assert "alice" not in got and got.endswith("VmFlags: rd wr mr mw me\n")
    assert red("ssh rd", "procs/42/cmdline") == "ssh " + red.redactor.token("host", "rd")
