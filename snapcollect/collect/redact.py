"""``--redact``: host names, user names, IP addresses and home paths as tokens.

The same input gives the same token within one bundle (an HMAC-SHA256 of
the value under a random key drawn for this bundle and never stored), so
a reader can still follow "the process of user-3f1c0a2b that talked to
ip4-9e0d7c11" across artifacts, but cannot get the value back, nor match
it against another bundle. Example, with the host ``web1.example.com``
and the user ``alice``::

    ssh alice@web1.example.com -i /home/alice/.ssh/id 10.0.0.7 fe80::1c:2
    ssh user-5d41402a@host-7e240de7 -i /home-2c26b46b/.ssh/id ip4-8f14e45f ip6-c9f0f895

What is replaced:

- the host names given (the node name, the fully qualified name), in any
  case; a host name counts where it stands alone, not as part of a longer
  word or as a path component (so a host called ``vm`` leaves
  ``/proc/sys/vm`` and ``vmstat`` alone, but not ``ssh vm`` nor ``//vm/``);
- the user names given, standing alone or in a path;
- home directories: the ones given and anything under ``/home/<name>``;
- IPv4 addresses (four decimal octets up to 255) and IPv6 addresses (that
  ``ipaddress`` accepts and that hold a digit, so that ``std::swap`` or
  ``add::bad`` in a symbol stay).

Names shorter than ``MIN_NAME`` characters are left alone: a one-letter
user would turn every text into tokens; the count of such names is
reported so the manifest can say so. A JSON field name (``"comm": ``) is
never replaced, whatever the users are called. The function is pure given
the key.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from dataclasses import dataclass, field

MIN_NAME = 2
# What a kernel table (meminfo, zoneinfo, a sysctl) can hold of those: file
# paths (swap files) and addresses, never a host or user name, while its
# own words ("vm stats threshold" in zoneinfo) may equal one.
PATHS_AND_ADDRESSES = ("home", "ip4", "ip6")

# Not worth hiding, and rewriting them would only confuse a reader.
_HOST_KEEP = {"localhost", "localhost.localdomain", "localdomain", "(none)"}

_IPV4 = r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d]|\.\d)"
_IPV6 = r"(?<![0-9A-Fa-f:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?(?![0-9A-Fa-f:])"
_HOME = r"/home/[^/\s\0'\"]+"
# A JSON field name ("pid": 1) is ours, not a user's, even if a user is called so.
_NOT_A_KEY = r'(?!"\s*:)'
# Literal-led searches that find every candidate of the two regexes above, fast.
_IPV4_HINT = re.compile(r"\.\d{1,3}\.\d{1,3}\.")
_IPV6_HINT = re.compile(r":[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{0,4}:")


@dataclass
class Redactor:
    """Replaces identifying strings in text; ``key`` is the per-bundle secret."""

    key: bytes
    hosts: list[str] = field(default_factory=list)
    users: list[str] = field(default_factory=list)
    homes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.skipped_short = 0
        hosts = self._keep_long({h for h in self.hosts if h and h.lower() not in _HOST_KEEP})
        users = self._keep_long({u for u in self.users if u})
        homes = {h.rstrip("/") for h in self.homes if h and h.rstrip("/") not in ("", "/")}
        self._hosts = sorted(hosts, key=len, reverse=True)
        self._users = sorted(users, key=len, reverse=True)
        self._homes = sorted(homes, key=len, reverse=True)
        self._patterns: dict[tuple[str, ...], re.Pattern] = {}
        self._cache: dict[tuple[str, str], str] = {}

    def _kinds(self, text: str, only: tuple[str, ...] | None) -> tuple[str, ...]:
        """The kinds that may occur in ``text``: substring tests are cheap, the regex is not."""
        def wanted(kind: str) -> bool:
            return only is None or kind in only

        kinds = []
        if wanted("home") and ("/home/" in text or any(h in text for h in self._homes)):
            kinds.append("home")
        if wanted("host") and self._hosts:
            low = text.lower()
            if any(h.lower() in low for h in self._hosts):
                kinds.append("host")
        if wanted("user") and any(u in text for u in self._users):
            kinds.append("user")
        if wanted("ip4") and _IPV4_HINT.search(text):
            kinds.append("ip4")
        if wanted("ip6") and ("::" in text or _IPV6_HINT.search(text)):
            kinds.append("ip6")
        return tuple(kinds)

    def _pattern(self, kinds: tuple[str, ...]) -> re.Pattern:
        got = self._patterns.get(kinds)
        if got is not None:
            return got
        alts = []
        if "home" in kinds:
            if self._homes:
                # A home directory, up to a path boundary (/home/al must not eat /home/alice).
                alts.append("(?P<home>" + "|".join(re.escape(h) for h in self._homes) + r")(?![^/\s\0'\"])")
            alts.append(f"(?P<home2>{_HOME})")
        if "host" in kinds:
            # Alone: not inside a word, not a path component; "//host" and "@host" count.
            alts.append(r"(?<![A-Za-z0-9_.-])(?<![^/]/)(?P<host>(?i:"
                        + "|".join(re.escape(h) for h in self._hosts) + r"))(?![A-Za-z0-9_-])" + _NOT_A_KEY)
        if "user" in kinds:
            alts.append(r"(?<![A-Za-z0-9_.-])(?P<user>"
                        + "|".join(re.escape(u) for u in self._users) + r")(?![A-Za-z0-9_-])" + _NOT_A_KEY)
        if "ip4" in kinds:
            alts.append(f"(?P<ip4>{_IPV4})")
        if "ip6" in kinds:
            alts.append(f"(?P<ip6>{_IPV6})")
        got = self._patterns[kinds] = re.compile("|".join(alts))
        return got

    def _keep_long(self, names: set[str]) -> set[str]:
        long = {n for n in names if len(n) >= MIN_NAME}
        self.skipped_short += len(names) - len(long)
        return long

    def token(self, kind: str, value: str) -> str:
        """``kind-<8 hex digits>``, the same for the same value under this key."""
        if kind == "host":
            value = value.lower()
        got = self._cache.get((kind, value))
        if got is None:
            mac = hmac.new(self.key, f"{kind}\0{value}".encode("utf-8", "surrogateescape"), hashlib.sha256)
            got = self._cache[(kind, value)] = f"{kind}-{mac.hexdigest()[:8]}"
        return got

    def _replace(self, m: re.Match) -> str:
        kind = m.lastgroup
        value = m.group(kind)
        if kind in ("home", "home2"):
            return "/" + self.token("home", value)
        if kind == "ip4":
            if any(int(o) > 255 for o in value.split(".")):
                return value
            return self.token("ip4", value)
        if kind == "ip6":
            if not any(c.isdigit() for c in value):
                return value
            try:
                ipaddress.IPv6Address(value)
            except ValueError:
                return value
            return self.token("ip6", value)
        return self.token(kind, value)

    def __call__(self, text: str, only: tuple[str, ...] | None = None) -> str:
        """``text`` with tokens; ``only``: the kinds to look for (default: all)."""
        if not text:
            return text
        kinds = self._kinds(text, only)
        if not kinds:
            return text
        return self._pattern(kinds).sub(self._replace, text)
