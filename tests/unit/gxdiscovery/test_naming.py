"""system_id normalisation and uniqueness."""

from __future__ import annotations

import pytest
from ovr_gxdiscovery.naming import Candidate, assign_system_ids, is_id, normalise_name


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # The cases of the original script (reference §5).
        ("Pro 6005-1", "pro6005-1"),
        ("PRO 6005.2", "pro6005-2"),
        ("diskobox pro30", "diskobox-pro30"),
        # Only letter-space-digit loses its space; digit-space-letter keeps a dash.
        ("Pro 30 East", "pro30-east"),
        ("6005 pro", "6005-pro"),
        ("  Pro   6005-1  ", "pro6005-1"),
        ("Pro\t6005", "pro6005"),
        # Made safe as a label value / client id / file name.
        ("Bäckerei Süd 2", "backerei-sud2"),
        ("Boat #7 (aft)", "boat-7-aft"),
        ("a/b+c", "a-b-c"),
        ("--x--", "x"),
        ("under_score", "under_score"),
        ("x" * 80, "x" * 63),
        ("", None),
        ("   ", None),
        ("!!!", None),
        (None, None),
    ],
)
def test_normalise_name(raw: str | None, expected: str | None) -> None:
    got = normalise_name(raw)
    assert got == expected
    if got is not None:
        assert is_id(got)


def test_derived_names_and_fallback_to_portal() -> None:
    ids = assign_system_ids([
        Candidate("a", "c0619ab68e54", display_name="Pro 6005-1"),
        Candidate("b", "be300d83ff04", display_name=None),
        Candidate("c", "0123456789ab", override="aft-bank", display_name="Pro 6005-9"),
    ])
    assert ids == {"a": "pro6005-1", "b": "be300d83ff04", "c": "aft-bank"}


def test_same_name_on_two_gx_gets_portal_suffix_on_both() -> None:
    cands = [
        Candidate("fore", "c0619ab68e54", display_name="Pro 6005-1"),
        Candidate("aft", "be300d83ff04", display_name="pro 6005-1"),
        Candidate("mid", "0123456789ab", display_name="Other"),
    ]
    ids = assign_system_ids(cands)
    assert ids == {"fore": "pro6005-1-c0619ab68e54", "aft": "pro6005-1-be300d83ff04", "mid": "other"}
    # Independent of the order they are listed in.
    assert assign_system_ids(reversed(cands)) == ids


def test_derived_name_equal_to_an_override_yields_to_it() -> None:
    ids = assign_system_ids([
        Candidate("a", "c0619ab68e54", override="pro6005-1"),
        Candidate("b", "be300d83ff04", display_name="Pro 6005-1"),
    ])
    assert ids == {"a": "pro6005-1", "b": "pro6005-1-be300d83ff04"}


def test_same_gx_listed_twice_and_long_names_stay_unique_and_valid() -> None:
    long = "Very long custom name " * 5
    ids = assign_system_ids([
        Candidate("ip", "c0619ab68e54", display_name=long),
        Candidate("mdns", "c0619ab68e54", display_name=long),
        Candidate("third", "be300d83ff04", display_name=long),
    ])
    assert len(set(ids.values())) == 3
    assert all(is_id(v) for v in ids.values()), ids
    assert ids["ip"].endswith("-ip") and ids["mdns"].endswith("-mdns")


def test_suffixed_id_colliding_with_a_plain_one_is_numbered_never_the_override() -> None:
    ids = assign_system_ids([
        Candidate("a", "p1", display_name="x"),
        Candidate("b", "p2", display_name="x"),
        Candidate("c", "p3", display_name="x-p1"),
        Candidate("d", "p4", override="x-p2"),
    ])
    assert ids["d"] == "x-p2"
    assert len(set(ids.values())) == 4
