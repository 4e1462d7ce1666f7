"""plugins/filter/ovr_names.py: the one Ansible-side definition of a node id and of the ids no
node may take, and the filters the preflights test ids with."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("ovr_names", ROOT / "plugins" / "filter" / "ovr_names.py")
assert _spec and _spec.loader
names = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(names)


def test_invalid_ids():
    good = ["boat-7", "van_2", "0", "a" * 63, "pro6005-1"]
    bad = ["", "Boat-7", "-boat", "_boat", "boat 7", "boat.7", "a" * 64, "boat-7\n", "bo/at", 7, None]
    assert names.ovr_invalid_ids(good) == []
    assert names.ovr_invalid_ids(bad) == [str(v) for v in bad]


def test_reserved_ids():
    assert names.ovr_reserved_ids(["boat-7", "events", "registry", "registry2"]) == ["events", "registry"]
    assert set(names.RESERVED_NODE_IDS) == {"registry", "events"}
    assert names.ovr_invalid_ids(list(names.RESERVED_NODE_IDS)) == []  # ids by form, refused by meaning


def test_no_role_spells_the_pattern_or_the_reserved_ids_again():
    """Defined once: the roles, playbooks and other plugins go through the filters."""
    pattern = re.compile(r"a-z0-9\]\[a-z0-9_-\]|\[\s*['\"]?registry['\"]?\s*,\s*['\"]?events|"
                         r"\[\s*['\"]?events['\"]?\s*,\s*['\"]?registry")
    own = ROOT / "plugins" / "filter" / "ovr_names.py"
    places = [p for d in ("roles", "playbooks", "plugins", "inventory") for p in (ROOT / d).rglob("*")
              if p.is_file() and p != own and p.suffix in {".yml", ".yaml", ".j2", ".py"}]
    assert places
    again = [str(p.relative_to(ROOT)) for p in places if pattern.search(p.read_text(errors="replace"))]
    assert not again, f"the id pattern or the reserved ids spelled out again in {again}: use ovr_invalid_ids/ovr_reserved_ids"
