"""Secrets and names never leave the host: a real collection, then every byte.

A process runs with a mysql-style ``-pPASSWORD``, ``--password=`` and a
URL credential in its argv while a collection runs; no member of the
archive (all decompressed, headers included) nor any report format holds
them. With --redact, run in a UTS namespace under a host name of its own
and with a user (from $SUDO_USER and /etc/passwd) named in the argv and in
a home path, neither the host name, the user names, the IP addresses nor
the home path survive anywhere either.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys

import pytest
import zstandard

from snapcollect.bundle import open_bundle

pytestmark = pytest.mark.live

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLI = [sys.executable, "-m", "snapcollect"]
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (runs as root on the CI machine)")

SECRETS = ["S3cretPassw0rd", "hunter2xyz", "UrlPassw0rd9"]


def _holder(*argv: str) -> subprocess.Popen:
    """A sleeping process holding 96 MiB (so it is among the top by RSS), with ``argv``."""
    code = "import sys, time\nbuf = b'x' * (96 << 20)\nprint('ready', flush=True)\ntime.sleep(600)\n"
    p = subprocess.Popen([sys.executable, "-c", code, *argv], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    return p


def _archive(path: str) -> bytes:
    with open(path, "rb") as fh:
        return zstandard.ZstdDecompressor().stream_reader(fh).read()


def _reports(path: str, d: str) -> dict[str, bytes]:
    """md, json, html and the text of the pdf."""
    out = {}
    for ext in ("md", "json", "html", "pdf"):
        target = os.path.join(d, f"report-{os.getpid()}.{ext}")
        p = subprocess.run([*CLI, "report", path, "-o", target], cwd=ROOT, capture_output=True, text=True,
                           timeout=300)
        if ext == "pdf" and p.returncode != 0:
            continue                    # PDF libraries absent: the text formats still count
        assert p.returncode == 0, (ext, p.stderr)
        with open(target, "rb") as fh:
            out[ext] = fh.read()
    if "pdf" in out:
        from pypdf import PdfReader

        out["pdf text"] = "\n".join(pg.extract_text() or "" for pg in
                                    PdfReader(os.path.join(d, f"report-{os.getpid()}.pdf")).pages).encode()
    return out


def _collect(d: str, *extra: str, wrap: list[str] | None = None, env: dict | None = None) -> str:
    argv = [*CLI, "collect", "-d", "2", "--no-bpf", "-q", "--top", "30", "-o", d, *extra]
    p = subprocess.run([*(wrap or []), *argv], cwd=ROOT, capture_output=True, text=True, timeout=120,
                       env={**os.environ, **(env or {})})
    assert p.returncode == 0, p.stderr
    return p.stdout.strip().splitlines()[-1]


def _cmdline_of(bundle_path: str, pid: int) -> bytes:
    data = open_bundle(bundle_path).data(f"procs/{pid}/cmdline")
    assert data, f"procs/{pid}/cmdline not in the bundle: the test process was not among the top 30"
    return data


@needs_root
def test_secrets_in_argv_appear_nowhere(tmp_path):
    holder = _holder("-u", "root", f"-p{SECRETS[0]}", f"--password={SECRETS[1]}",
                     f"https://app:{SECRETS[2]}@db.example/x")
    try:
        path = _collect(str(tmp_path))
    finally:
        holder.kill()
        holder.wait()
    # The process was captured, masked.
    cmdline = _cmdline_of(path, holder.pid)
    assert b"\0-p***\0--password=***\0https://app:***@db.example/x" in cmdline
    assert open_bundle(path).manifest["privacy"] == {"secrets": "masked", "redacted": False}
    where = {"archive": _archive(path), **_reports(path, str(tmp_path))}
    for name, data in where.items():
        for secret in SECRETS:
            assert secret.encode() not in data, (secret, name)


@needs_root
def test_keep_secrets_keeps_them(tmp_path):
    holder = _holder(f"-p{SECRETS[0]}")
    try:
        path = _collect(str(tmp_path), "--keep-secrets")
    finally:
        holder.kill()
        holder.wait()
    assert SECRETS[0].encode() in _cmdline_of(path, holder.pid)
    assert open_bundle(path).manifest["privacy"]["secrets"] == "kept (--keep-secrets)"


def _login_users() -> list[tuple[str, str]]:
    out = []
    with open("/etc/passwd") as fh:
        for line in fh:
            f = line.strip().split(":")
            if len(f) >= 7 and f[2].isdigit() and 1000 <= int(f[2]) < 65534:
                out.append((f[0], f[5]))
    return out


@needs_root
@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare(1) (util-linux) for a UTS namespace")
def test_redact_leaves_no_host_user_address_or_home(tmp_path):
    me = os.getpid()
    host = f"snapredhost{me}"
    user = f"snapreduser{me}"
    home = f"/home/{user}"
    ips = ["10.213.7.42", "fd00:5ec:7::42"]
    others = _login_users()
    argv = [host, f"{user}@{host}", f"{home}/data.db", *ips, *[u for u, _ in others], *[h for _, h in others]]
    holder = _holder(*argv)
    try:
        path = _collect(str(tmp_path), "--redact", env={"SUDO_USER": user},
                        wrap=["unshare", "--uts", "sh", "-c", f'hostname {host} && exec "$@"', "sh"])
    finally:
        holder.kill()
        holder.wait()
    cmdline = _cmdline_of(path, holder.pid)
    assert cmdline.count(b"host-") >= 2 and b"user-" in cmdline and b"ip4-" in cmdline and b"ip6-" in cmdline
    assert host not in os.path.basename(path)
    m = open_bundle(path).manifest
    assert m["privacy"]["redacted"] is True and m["host"].startswith("host-")
    originals = [host, user, home, *ips, *[u for u, _ in others if len(u) >= 2],
                 *[h for _, h in others if h.startswith("/home/")]]
    where = {"archive": _archive(path), **_reports(path, str(tmp_path))}
    for name, data in where.items():
        for original in originals:
            assert original.encode() not in data, (original, name)
    assert not glob.glob(os.path.join(str(tmp_path), f"*{host}*"))
