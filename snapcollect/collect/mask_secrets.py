"""Password-like arguments in command lines, masked before they are written.

Command lines reach the bundle in /proc/PID/cmdline (arguments separated
by NUL), in the header line of ``pmap -x`` (separated by spaces) and in
whatever a command or a kernel log line quotes. The kernel shows argv to
every local user, but a bundle travels further: into tickets, onto
laptops. Example (cmdline of a mysql client, NULs shown as spaces)::

    mysql -u root -pS3cretPassw0rd --password=hunter2 https://app:pw@db/x

becomes::

    mysql -u root -p*** --password=*** https://app:***@db/x

What is masked, wherever it appears in a text (an argument starts after
a space, a NUL, a quote or at the start of a line):

- ``-pVALUE`` (mysql, mysqldump, mariadb and friends take the password
  glued to -p), except the option words of find, gcc and ld that begin
  with -p (``-path``, ``-print0``, ``-pthread``, ...);
- an option whose name holds password, passwd, secret, token, api-key,
  access-key, private-key, credential or auth: ``--password=X``,
  ``--password X``, ``-token X`` (not ``--token-file X``: a path);
- ``key=value`` where the key holds one of those words (``PGPASSWORD=``,
  ``secret=``, ``?token=``; also ``pwd=``);
- the password of a URL: ``scheme://user:pass@host``;
- ``Authorization: <scheme> <credentials>`` and ``Bearer <token>``;
- AWS access key ids (``AKIA`` or ``ASIA`` and 16 more capitals or digits).

Pure functions of text; masking a masked text changes nothing.
"""

from __future__ import annotations

import re

MASK = "***"

# What precedes an argument: start, whitespace (pmap, ps, log lines), NUL
# (cmdline), a quote or an opening bracket (a shell -c string, JSON).
_START = r"(?<![^\s\0'\"(\[])"
_VALUE = r"[^\s\0'\"]+"
# Each word ends there ("--passive", "--author", "max_tokens" are not secrets).
_SECRET_WORD = (r"(?:pass(?:word|wd|phrase)?|secrets?|token|api[-_]?key|access[-_]?key|private[-_]?key"
                r"|credentials?|auth)(?![a-z])")

# -pVALUE. Option words of common tools that merely begin with -p.
_NOT_A_PASSWORD = {"ath", "erm", "rint", "rint0", "rintf", "rune", "ipe", "thread", "threads", "edantic",
                   "edantic-errors", "ie", "g", "ic", "IC", "IE", "lugin", "rofile", "ass-exit-codes"}
# Led by the literal (fast to find); the start of an argument is checked after.
_DASH_P = re.compile(r"-p(" + _VALUE + r")")

# --password=X / -token=X (the value glued with =).
_OPT_EQ = re.compile(_START + r"(--?[A-Za-z0-9_-]*" + _SECRET_WORD + r"[A-Za-z0-9_-]*=)(" + _VALUE + ")",
                     re.IGNORECASE)
# --password X (the value in the next argument).
_OPT_SEP = re.compile(_START + r"(--?[A-Za-z0-9_-]*" + _SECRET_WORD + r"[A-Za-z0-9_-]*)([\s\0]+)(" + _VALUE + ")",
                      re.IGNORECASE)
# Options that name where a secret is, not the secret itself.
_POINTER = re.compile(r"(?:file|path|dir|env|command|cmd|helper)$", re.IGNORECASE)

# key=value, also inside URLs' query strings and comma lists.
_KEY_EQ = re.compile(r"(?<![^\s\0'\"(\[?&;,])([A-Za-z0-9_.-]*(?:" + _SECRET_WORD + r"|pwd)"
                     r"[A-Za-z0-9_.-]*=)([^\s\0'\"&;,]+)", re.IGNORECASE)

_URL_PASS = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^/\s\0:@]*:)([^/\s\0@]+)(@)")
_AUTH_HEADER = re.compile(r"(authorization\s*[:=]\s*(?:[A-Za-z-]+\s+)?)([^\s\0'\"]+)", re.IGNORECASE)
_BEARER = re.compile(r"\b(bearer\s+)([A-Za-z0-9._~+/=-]{6,})", re.IGNORECASE)
_AWS_KEY = re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")

# Cheap tests first (substring search is fast, these regexes are not):
# most texts, /proc numbers and smaps included, hold none of the words.
_WORDS = ("pass", "secret", "token", "cred", "auth", "pwd", "apikey", "api-key", "api_key", "access-key",
          "access_key", "accesskey", "private-key", "private_key", "privatekey")
_SEPARATORS = " \t\n\r\f\v\0'\"(["


def _dash_p(m: re.Match) -> str:
    value, i = m.group(1), m.start()
    if i > 0 and m.string[i - 1] not in _SEPARATORS:
        return m.group(0)
    if value == MASK or value in _NOT_A_PASSWORD or value.startswith("-"):
        return m.group(0)
    return "-p" + MASK


def _opt_sep(m: re.Match) -> str:
    opt, sep, value = m.group(1), m.group(2), m.group(3)
    if "=" in opt or value.startswith("-") or _POINTER.search(opt.rstrip("-_")):
        return m.group(0)
    # "--no-password", "--password-stdin": flags that take no value.
    low = opt.lower()
    if low.startswith(("--no-", "-no-")) or low.endswith(("-stdin", "-prompt")):
        return m.group(0)
    return opt + sep + MASK


def _opt_eq(m: re.Match) -> str:
    if _POINTER.search(m.group(1)[:-1]):
        return m.group(0)
    return m.group(1) + MASK


def mask_secrets(text: str) -> str:
    """``text`` with password-like arguments replaced by ``***``."""
    if not text:
        return text
    low = text.lower()
    if "://" in low and "@" in low:
        text = _URL_PASS.sub(lambda m: m.group(1) + MASK + m.group(3), text)
    if "authorization" in low:
        text = _AUTH_HEADER.sub(lambda m: m.group(1) + MASK, text)
    if "bearer" in low:
        text = _BEARER.sub(lambda m: m.group(1) + MASK, text)
    if "AKIA" in text or "ASIA" in text:
        text = _AWS_KEY.sub(lambda m: m.group(1) + MASK, text)
    if any(w in low for w in _WORDS):
        text = _OPT_EQ.sub(_opt_eq, text)
        text = _OPT_SEP.sub(_opt_sep, text)
        text = _KEY_EQ.sub(lambda m: m.group(0) if _POINTER.search(m.group(1)[:-1]) else m.group(1) + MASK,
                           text)
    if "-p" in text:
        text = _DASH_P.sub(_dash_p, text)
    return text
