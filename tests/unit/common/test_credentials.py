"""The credentials file: reloaded when it changes, cache keyed by HMAC (never a plain hash)."""

from __future__ import annotations

import hashlib
import json
import os

import pytest
from ovr_common.credentials import CredentialsError, CredentialsFile, Entry


def parse(text: str) -> dict[str, Entry]:
    return {u["name"]: Entry(u["name"], u["role"], u["hash"]) for u in json.loads(text)["users"]}


class Checker:
    """A stand-in hash scheme ("plain:<password>") that counts its checks."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, stored: str, password: str) -> bool:
        self.calls.append(stored)
        return stored == f"plain:{password}"


def write(path, users: list[tuple[str, str, str]]) -> None:
    path.write_text(json.dumps({"users": [{"name": n, "role": r, "hash": f"plain:{p}"} for n, r, p in users]}))


def make(path, **kw) -> tuple[CredentialsFile, Checker]:
    check = Checker()
    return CredentialsFile(path, parse, check, lambda entries: "dummy:x", **kw), check


def test_verify_caches_successes_only(tmp_path):
    path = tmp_path / "users.json"
    write(path, [("ada", "admin", "secret-1")])
    creds, check = make(path)
    for _ in range(5):
        assert creds.verify("ada", "secret-1") == Entry("ada", "admin", "plain:secret-1")
    assert len(check.calls) == 1
    assert creds.verify("ada", "wrong") is None and creds.verify("ada", "wrong") is None
    assert len(check.calls) == 3


def test_unknown_names_are_checked_against_the_dummy(tmp_path):
    path = tmp_path / "users.json"
    write(path, [("ada", "admin", "secret-1")])
    creds, check = make(path)
    assert creds.verify("nobody", "secret-1") is None
    assert check.calls == ["dummy:x"]


def test_a_changed_file_is_reloaded_and_empties_the_cache(tmp_path):
    path = tmp_path / "users.json"
    write(path, [("ada", "admin", "secret-1")])
    creds, _ = make(path)
    assert creds.verify("ada", "secret-1") is not None
    write(path, [("ada", "viewer", "secret-2"), ("bob", "viewer", "secret-3")])
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # a new mtime even on coarse clocks
    assert creds.verify("ada", "secret-1") is None  # the old password no longer works, cached or not
    assert creds.verify("ada", "secret-2").role == "viewer"
    assert creds.lookup("bob") is not None
    assert creds.loads == 2


def test_an_unchanged_file_is_not_parsed_again(tmp_path):
    path = tmp_path / "users.json"
    write(path, [("ada", "admin", "secret-1")])
    creds, _ = make(path)
    for _ in range(10):
        creds.lookup("ada")
    assert creds.loads == 1


def test_the_cache_key_is_an_hmac_with_a_per_process_key_not_the_plain_hash(tmp_path):
    path = tmp_path / "users.json"
    write(path, [("ada", "admin", "secret-1")])
    one, _ = make(path)
    two, _ = make(path)
    key = one.cache_key("ada", "secret-1")
    plain = {hashlib.sha256(b"secret-1").digest(), hashlib.sha256(b"ada\0secret-1").digest()}
    assert key not in plain and key.hex() not in {p.hex() for p in plain}
    assert key != two.cache_key("ada", "secret-1")  # a random key per instance
    assert key == one.cache_key("ada", "secret-1")
    assert one.verify("ada", "secret-1") is not None
    assert set(one._cache) == {key}  # the only thing kept in memory


def test_missing_or_broken_file(tmp_path):
    path = tmp_path / "users.json"
    lenient, _ = make(path)
    assert lenient.verify("ada", "x") is None and lenient.entries() == {}
    strict, _ = make(path, strict=True)
    with pytest.raises(CredentialsError, match=r"users\.json"):
        strict.entries()
    path.write_text("not json")
    with pytest.raises(CredentialsError, match=r"users\.json"):
        strict.entries()
    assert lenient.entries() == {}
