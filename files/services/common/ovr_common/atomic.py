"""Atomic file writes: readers see the old file or the new one, never a part.

A temporary file in the target's directory gets the mode (and owner/group) first, then the
content, fsync, rename over the target, fsync of the directory. On any failure the temporary
file is removed and the old file is left as it was. A symlink at the target is followed, so
/etc/ovr/gx_systems.json may point into a directory the hardened unit may write.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path


class WriteError(OSError):
    """An output could not be written; the message names the file and the cause."""


def write_atomic(path: Path | str, data: bytes, mode: int = 0o640, *, uid: int | None = None,
                 gid: int | None = None) -> None:
    """Replace `path` with `data`. uid/gid None leave that id as the writing process's."""
    target = os.path.realpath(path)
    directory, base = os.path.split(target)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{base}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)
            if uid is not None or gid is not None:
                os.fchown(fh.fileno(), -1 if uid is None else uid, -1 if gid is None else gid)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_bytes(path: Path | str) -> bytes | None:
    """The file's content (symlink followed), None when it does not exist."""
    try:
        return Path(os.path.realpath(path)).read_bytes()
    except FileNotFoundError:
        return None


def _fix_attrs(path: str, mode: int, gid: int | None) -> None:
    st = os.stat(path)
    if gid is not None and st.st_gid != gid:
        os.chown(path, -1, gid)
    if st.st_mode & 0o7777 != mode:
        os.chmod(path, mode)


def write_if_changed(path: Path | str, content: bytes, mode: int, gid: int | None = None) -> bool:
    """Write `content` to `path` unless it already holds it. True when the file was (re)written.

    Equal content: the file is left alone (same inode, same mtime), only its mode and group are
    corrected if they drifted. gid None keeps the owner and group of an existing file (e.g. the
    role's root:ovr seed). Any failure is a WriteError naming the file."""
    target = os.path.realpath(path)
    try:
        try:
            with open(target, "rb") as fh:
                current: bytes | None = fh.read()
            st = os.stat(target)
        except FileNotFoundError:
            current, st = None, None
        if current == content:
            _fix_attrs(target, mode, gid)
            return False
        uid = None
        if gid is None and st is not None and (st.st_uid, st.st_gid) != (os.geteuid(), os.getegid()):
            uid, gid = st.st_uid, st.st_gid
        write_atomic(target, content, mode, uid=uid, gid=gid)
        return True
    except OSError as exc:
        hint = ""
        if exc.errno == errno.EROFS:  # outside the unit's ReadWritePaths
            hint = " (read-only here: the unit may only write its ReadWritePaths; see README.md)"
        raise WriteError(f"cannot write {path}: {exc.strerror or exc}{hint}") from None
