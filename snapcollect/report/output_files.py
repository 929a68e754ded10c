"""Writing report files: the bundle's mode, no symlink followed, no silent overwrite.

A report holds what the bundle holds (command lines, names, the kernel
log), so it gets the bundle's mode, 0600, unless the user asks for
another. Reports are often written into shared directories (/tmp,
/var/tmp), where another user can plant a symlink or a directory under
the name a report is about to get; so nothing here follows one:

- the output's directory is opened once and every later step is
  relative to that descriptor (``dir_fd``), so a path component swapped
  mid-run changes nothing;
- each file is first written to a fresh name created with
  ``O_CREAT | O_EXCL | O_NOFOLLOW``, then put in place with ``link(2)``,
  which fails if the name exists (whatever it is, a symlink included)
  and never follows one; with ``force``, ``rename(2)``, which replaces a
  symlink itself rather than what it points to;
- the charts folder is made with ``mkdir``; an existing one is opened
  with ``O_NOFOLLOW | O_DIRECTORY`` and used only when ``force`` is given
  and it belongs to the user writing the report.

Nothing is left behind when a write fails: the fresh name is removed.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat

from snapcollect.errors import SnapcollectError

DEFAULT_MODE = 0o600
_OPEN_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# link(2) is refused on some file systems (FAT, some FUSE and network ones)
# and by fs.protected_hardlinks in odd set-ups: then check, and rename.
_NO_LINK = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.EXDEV, errno.ENOSYS}


class ReportOutputError(SnapcollectError):
    """The report could not be written where asked."""

    exit_code = 1


def parse_mode(text: str) -> int:
    """An octal file mode from the command line (``600``, ``0644``, ``0o640``)."""
    digits = text[2:] if text.lower().startswith("0o") else text
    try:
        mode = int(digits, 8)
    except ValueError:
        raise ValueError(f"not an octal file mode: {text!r} (e.g. 600 or 644)") from None
    if not 0 <= mode <= 0o777:
        raise ValueError(f"file mode out of range: {text!r}: permission bits only, 000 to 777")
    if not mode & 0o600 == 0o600:
        raise ValueError(f"file mode {text!r} would not let the owner read and write the report")
    return mode


def dir_mode(mode: int) -> int:
    """The charts folder's mode: the file mode with x wherever r is (0600 -> 0700)."""
    return mode | ((mode & 0o444) >> 2)


def exists_error(shown: str) -> ReportOutputError:
    return ReportOutputError(f"{shown}: already exists; use --force to replace it")


def open_dir(path: str) -> int:
    """A descriptor of the directory a report goes into (the user's own choice of path)."""
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise ReportOutputError(f"{path}: cannot open the output directory: {exc.strerror}") from None


def exists_in(dir_fd: int, name: str) -> bool:
    """Whether ``name`` exists in the directory (a dangling symlink counts)."""
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        return True
    except FileNotFoundError:
        return False


def write_new(dir_fd: int, name: str, data: bytes, *, mode: int = DEFAULT_MODE, force: bool = False,
              shown: str | None = None) -> None:
    """Write ``data`` as ``name`` in the directory, all or nothing (see module docstring)."""
    shown = shown or name
    tmp = f".{name}.{secrets.token_hex(6)}.tmp"
    try:
        fd = os.open(tmp, _OPEN_NEW, 0o600, dir_fd=dir_fd)
    except OSError as exc:
        raise ReportOutputError(f"{shown}: cannot create: {exc.strerror}") from None
    placed = False
    try:
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                # fchmod, not the umask: the mode asked for is the mode given.
                os.fchmod(fh.fileno(), mode)
            if force:
                os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
                placed = True
                return
            try:
                os.link(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
            except FileExistsError:
                raise exists_error(shown) from None
            except OSError as exc:
                if exc.errno not in _NO_LINK:
                    raise
                if exists_in(dir_fd, name):
                    raise exists_error(shown) from None
                os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
                placed = True
        except OSError as exc:
            raise ReportOutputError(f"{shown}: cannot write: {exc.strerror}") from None
    finally:
        if not placed:
            try:
                os.unlink(tmp, dir_fd=dir_fd)
            except OSError:
                pass


def make_dir(dir_fd: int, name: str, *, mode: int = DEFAULT_MODE, force: bool = False,
             shown: str | None = None) -> int:
    """Create (or, with ``force``, reuse) the folder ``name``; returns its descriptor.

    A reused folder must be a real directory, not a symlink, owned by the
    user writing the report: another user's folder could be swapped or
    filled under us.
    """
    shown = shown or name
    try:
        os.mkdir(name, dir_mode(mode), dir_fd=dir_fd)
        created = True
    except FileExistsError:
        if not force:
            raise exists_error(shown) from None
        created = False
    except OSError as exc:
        raise ReportOutputError(f"{shown}: cannot create the charts folder: {exc.strerror}") from None
    try:
        fd = os.open(name, _OPEN_DIR, dir_fd=dir_fd)
    except OSError as exc:
        why = "is a symlink or not a directory" if exc.errno in (errno.ELOOP, errno.ENOTDIR) else exc.strerror
        raise ReportOutputError(f"{shown}: cannot use the charts folder: {why}") from None
    st = os.fstat(fd)
    if not stat.S_ISDIR(st.st_mode) or (not created and st.st_uid != os.geteuid()):
        os.close(fd)
        raise ReportOutputError(f"{shown}: cannot use the charts folder: it belongs to another user")
    if created:
        os.fchmod(fd, dir_mode(mode))     # mkdir's mode went through the umask
    return fd
