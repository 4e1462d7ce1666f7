"""Atomic writes: the new content or the old file, never a part, and no temporary file left."""

from __future__ import annotations

import os
import stat

import pytest
from ovr_common import atomic


def test_write_atomic_replaces_with_mode_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "out.json"
    path.write_bytes(b"old")
    atomic.write_atomic(path, b"new", 0o640)
    assert path.read_bytes() == b"new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert os.listdir(tmp_path) == ["out.json"]


def test_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "out.json"
    path.write_bytes(b"old content")

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="No space"):
        atomic.write_atomic(path, b"new content", 0o644)
    assert path.read_bytes() == b"old content"
    assert os.listdir(tmp_path) == ["out.json"]  # the temporary file is gone too


def test_write_atomic_follows_a_symlink(tmp_path):
    real = tmp_path / "state" / "systems.json"
    real.parent.mkdir()
    real.write_bytes(b"{}")
    link = tmp_path / "systems.json"
    link.symlink_to(real)
    atomic.write_atomic(link, b'{"a": 1}', 0o644)
    assert link.is_symlink() and real.read_bytes() == b'{"a": 1}'


def test_write_if_changed_keeps_the_inode_of_equal_content(tmp_path):
    path = tmp_path / "x.conf"
    assert atomic.write_if_changed(path, b"one", 0o640) is True
    inode = path.stat().st_ino
    path.chmod(0o600)
    assert atomic.write_if_changed(path, b"one", 0o640) is False
    assert path.stat().st_ino == inode and stat.S_IMODE(path.stat().st_mode) == 0o640
    assert atomic.write_if_changed(path, b"two", 0o640) is True and path.stat().st_ino != inode


def test_write_if_changed_names_the_file(tmp_path):
    with pytest.raises(atomic.WriteError, match=r"cannot write .*/missing/out.conf"):
        atomic.write_if_changed(tmp_path / "missing" / "out.conf", b"x", 0o640)


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
def test_write_if_changed_keeps_the_owner_and_group_of_the_old_file(tmp_path):
    path = tmp_path / "seed.json"
    path.write_bytes(b"seed")
    os.chown(path, 65534, 65534)  # e.g. the role's root:ovr seed, written by someone else
    assert atomic.write_if_changed(path, b"new", 0o644) is True
    st = path.stat()
    assert (st.st_uid, st.st_gid) == (65534, 65534) and path.read_bytes() == b"new"
