"""Atomic write-if-changed.

Equal content: the file is left alone (same inode, same mtime), only its mode and group are
corrected if they drifted. Different content: a temporary file in the same directory gets the
mode and group first, then the content, fsync, rename over the target, fsync of the directory.
A symlink at the target is followed, so /etc/ovr/gx_systems.json may point into the state
directory (which the hardened unit may write) while readers keep using the /etc/ovr path.
"""

from __future__ import annotations

import contextlib
import errno
import grp
import os
import tempfile
from pathlib import Path


class WriteError(OSError):
    """An output could not be written; the message names the file and the cause."""


def resolve_group(name: str | None) -> int | None:
    if not name:
        return None
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise WriteError(f"group {name!r} does not exist (OVR_TELEGRAF_CONF_GROUP)") from None


def read_bytes(path: Path) -> bytes | None:
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


def write_if_changed(path: Path, content: bytes, mode: int, gid: int | None = None) -> bool:
    """Write `content` to `path` unless it already holds it. True when the file was (re)written.

    gid None keeps the group (and owner) of an existing file, e.g. the role's root:ovr seed."""
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
        directory, base = os.path.split(target)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{base}.", suffix=".tmp")
        try:
            os.fchmod(fd, mode)
            if gid is not None:
                os.fchown(fd, -1, gid)
            elif st is not None and (st.st_uid, st.st_gid) != (os.geteuid(), os.getegid()):
                os.fchown(fd, st.st_uid, st.st_gid)
            with os.fdopen(fd, "wb") as fh:
                fh.write(content)
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
        return True
    except WriteError:
        raise
    except OSError as exc:
        hint = ""
        if exc.errno == errno.EROFS:  # outside the unit's ReadWritePaths
            hint = " (read-only here: the unit may only write its ReadWritePaths; see README.md)"
        raise WriteError(f"cannot write {path}: {exc.strerror or exc}{hint}") from None
