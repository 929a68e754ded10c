"""What the bundle may say about the people and the network of the host.

By default password-like arguments are masked (mask_secrets.py);
``--keep-secrets`` keeps them. ``--redact`` also turns host names, user
names, IP addresses and home paths into tokens (redact.py). Both apply to
every text the bundle writer stores, manifest included, through one
function handed to the writer. Kernel tables and the per-tick process
lines hold no command line and are not scanned for secrets. In the
kernel's own tables (proc/*, sys/*) --redact replaces only paths and
addresses, since their words may equal a host name (a host called ``vm``
and zoneinfo's ``vm stats threshold``). The names to hide come from the
host:

- host names: gethostname(2), uname(2)'s node name, /etc/hostname and the
  names on /etc/hosts lines that list one of those (the FQDN is usually
  there; no DNS query is made: a sick host's resolver may hang);
- users: /etc/passwd entries from UID_MIN (/etc/login.defs, 1000 if
  unset) up, except nobody, with their home directories; plus $SUDO_USER.
  /etc/passwd is read as a file, not through NSS: an LDAP lookup could
  hang. Directory users that never appear in it are still caught where a
  path under /home/ names them.

The per-bundle HMAC key is drawn from the kernel's random pool and
dropped when the collector exits; it is never written.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass

from snapcollect.bundle.names import (KERNEL_PREFIXES, PID_SMAPS, PID_SMAPS_ROLLUP, PID_STATUS,
                                      PROCS_PREFIX, SERIES_PROCS, series_source)
from snapcollect.collect.mask_secrets import mask_secrets
from snapcollect.collect.redact import MIN_NAME, PATHS_AND_ADDRESSES, Redactor
from snapcollect.collect.sources import read_capped

NOBODY_UID = 65534


def _uid_min() -> int:
    got = read_capped("/etc/login.defs", 256 * 1024)
    for line in got.text.splitlines() if got.ok else []:
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "UID_MIN" and parts[1].isdigit():
            return int(parts[1])
    return 1000


def host_names() -> list[str]:
    names = {socket.gethostname(), os.uname().nodename}
    got = read_capped("/etc/hostname", 4096)
    if got.ok:
        names.add(got.text.strip())
    names.discard("")
    hosts = read_capped("/etc/hosts", 1024 * 1024)
    for line in hosts.text.splitlines() if hosts.ok else []:
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 2 and names & set(fields[1:]):
            names.update(fields[1:])
    return sorted(names)


def users_and_homes() -> tuple[list[str], list[str]]:
    """Login users of the host and their home directories, from /etc/passwd."""
    uid_min = _uid_min()
    users, homes = set(), set()
    got = read_capped("/etc/passwd", 16 * 1024 * 1024)
    for line in got.text.splitlines() if got.ok else []:
        f = line.split(":")
        if len(f) < 7 or not f[2].isdigit():
            continue
        uid = int(f[2])
        if uid < uid_min or uid == NOBODY_UID:
            continue
        users.add(f[0])
        if f[5].startswith("/") and f[5].rstrip("/") not in ("", "/nonexistent", "/tmp", "/var", "/usr"):
            homes.add(f[5])
    sudo_user = os.environ.get("SUDO_USER")
    if sudo_user and sudo_user != "root":
        users.add(sudo_user)
    return sorted(users), sorted(homes)


# The per-tick process lines: stat and status fields, no command line (the
# only text is comm, 15 bytes). With 10,000 processes they are 3 MB a tick:
# not scanning them for arguments keeps masking off the per-tick cost.
PROCESS_LINES = SERIES_PROCS

# Tables the kernel formats for one process: mapped file paths and comm are
# their only text, never an argument; smaps can be 32 MB, not worth a scan.
_PROCESS_TABLES = tuple(f"/{fname}" for fname in (PID_SMAPS, PID_SMAPS_ROLLUP, PID_STATUS))


def is_kernel_table(artifact: str) -> bool:
    """A /proc or /sys table of the kernel (not procs/PID/..., which quote users' text)."""
    return series_source(artifact).startswith(KERNEL_PREFIXES)


def _is_process_table(artifact: str) -> bool:
    return artifact.startswith(PROCS_PREFIX) and artifact.endswith(_PROCESS_TABLES)


def may_hold_arguments(artifact: str) -> bool:
    """Whether command lines can appear in the artifact (or "" for the manifest)."""
    return not (is_kernel_table(artifact) or _is_process_table(artifact) or artifact == PROCESS_LINES)


def redaction_kinds(artifact: str) -> tuple[str, ...] | None:
    """What --redact looks for in the artifact; None: everything."""
    if is_kernel_table(artifact):
        return PATHS_AND_ADDRESSES
    if _is_process_table(artifact):
        # Paths name users too (/var/lib/alice); smaps' two-letter flag
        # words (rd wr mr) may equal a short host name.
        return PATHS_AND_ADDRESSES + ("user",)
    return None


@dataclass
class Privacy:
    """The text filter for the bundle writer, and what the manifest says of it."""

    keep_secrets: bool
    redactor: Redactor | None

    @classmethod
    def for_args(cls, args) -> "Privacy":
        redactor = None
        if args.redact:
            users, homes = users_and_homes()
            redactor = Redactor(secrets.token_bytes(32), hosts=host_names(), users=users, homes=homes)
        return cls(keep_secrets=args.keep_secrets, redactor=redactor)

    @property
    def scrub(self) -> "Privacy | None":
        """The writer's text filter (``applies``, then call), or None when nothing is to change."""
        if self.keep_secrets and self.redactor is None:
            return None
        return self

    def applies(self, artifact: str) -> bool:
        """False when the filter would return every text of ``artifact`` as it is."""
        return self.redactor is not None or may_hold_arguments(artifact)

    def __call__(self, text: str, artifact: str = "") -> str:
        if not self.keep_secrets and may_hold_arguments(artifact):
            text = mask_secrets(text)
        if self.redactor is not None:
            text = self.redactor(text, redaction_kinds(artifact))
        return text

    def host_label(self, host: str) -> str:
        """The host as the bundle's file name shows it."""
        return self.redactor.token("host", host) if self.redactor else host

    def manifest(self) -> dict:
        doc: dict = {"secrets": "kept (--keep-secrets)" if self.keep_secrets else "masked",
                     "redacted": self.redactor is not None}
        if self.redactor is not None:
            doc["redaction"] = ("host names, user names, IP addresses and home paths replaced by tokens "
                                "(HMAC-SHA256 under a per-bundle key that was not kept)")
            if self.redactor.skipped_short:
                doc["redaction_skipped"] = (f"{self.redactor.skipped_short} names shorter than "
                                            f"{MIN_NAME} "
                                            "characters left as they are")
        return doc
