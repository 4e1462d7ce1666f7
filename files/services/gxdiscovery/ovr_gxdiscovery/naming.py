"""system_id: from the GX's CustomName (or the inventory override, or the portal id), unique on the node.

Normalisation (as the original refresh script, then made safe): lowercase, drop the space between
a letter and a digit, "." and spaces become "-". "Pro 6005-1" -> "pro6005-1", "PRO 6005.2" ->
"pro6005-2", "diskobox pro30" -> "diskobox-pro30". The result is also made a safe identifier
(the same form node_id and names have: ^[a-z0-9][a-z0-9_-]{0,62}$): accents are dropped, any
other character becomes "-", runs of "-" collapse, and it is cut to 63 characters. It is used as
a Prometheus label value, in Telegraf's MQTT client id and in file and topic names.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from ovr_common.protocol import NODE_ID_RE

ID_RE = NODE_ID_RE
MAX_LEN = 63

_LETTER_SPACE_DIGIT = re.compile(r"([a-z]) (?=[0-9])")
_UNSAFE = re.compile(r"[^a-z0-9_-]+")
_DASHES = re.compile(r"-{2,}")


def normalise_name(raw: str | None) -> str | None:
    """The system_id a GX name gives, or None when nothing usable is left."""
    if raw is None:
        return None
    text = unicodedata.normalize("NFKD", raw)
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = " ".join(text.lower().split())  # trim, collapse whitespace of any kind
    text = _LETTER_SPACE_DIGIT.sub(r"\1", text)
    text = text.replace(".", "-").replace(" ", "-")
    text = _UNSAFE.sub("-", text)
    text = _DASHES.sub("-", text)
    return _trim(text) or None


def _trim(text: str, limit: int = MAX_LEN) -> str:
    return text[:limit].strip("-_") if len(text) > limit else text.strip("-_")


def is_id(value: str) -> bool:
    return bool(ID_RE.match(value))


@dataclass(frozen=True)
class Candidate:
    """One GX that needs a system_id: its inventory name, override, discovered name, portal id."""

    name: str
    portal_id: str
    override: str | None = None
    display_name: str | None = None  # CustomName / SystemName as the GX reports it


def base_id(c: Candidate) -> str:
    if c.override:
        return c.override
    return normalise_name(c.display_name) or normalise_name(c.portal_id) or "gx"


def _with_suffix(base: str, suffix: str) -> str:
    suffix = normalise_name(suffix) or "x"
    return f"{_trim(base, MAX_LEN - len(suffix) - 1)}-{suffix}"


def assign_system_ids(candidates: Iterable[Candidate]) -> dict[str, str]:
    """Inventory name -> system_id, unique among the candidates.

    Overrides are kept as they are (the inventory check rejects two equal overrides). A derived
    id shared by several GX, or equal to an override, gets "-<portal id>" on every GX that shares
    it, so no GX "owns" the plain name by being listed first; the same GX listed twice (same
    portal id) also gets "-<name>". The result depends only on the candidates, not their order.
    """
    cands = sorted(candidates, key=lambda c: c.name)
    result: dict[str, str] = {}
    taken: set[str] = set()
    for c in cands:
        if c.override:
            result[c.name] = c.override
            taken.add(c.override)
    derived = [c for c in cands if not c.override]
    groups: dict[str, list[Candidate]] = defaultdict(list)
    for c in derived:
        groups[base_id(c)].append(c)
    for base, members in groups.items():
        if len(members) == 1 and base not in taken:
            result[members[0].name] = base
            continue
        portals = [m.portal_id for m in members]
        for m in members:
            sid = _with_suffix(base, m.portal_id)
            if portals.count(m.portal_id) > 1:
                sid = _with_suffix(sid, m.name)
            result[m.name] = sid
    # Last resort (e.g. a suffixed id equal to another GX's name): number the later derived
    # ones; overrides come first and are never changed.
    seen: set[str] = set()
    for c in sorted(cands, key=lambda c: (c.override is None, c.name)):
        sid = result[c.name]
        if sid in seen:
            n = 2
            while _with_suffix(sid, str(n)) in seen or _with_suffix(sid, str(n)) in result.values():
                n += 1
            sid = _with_suffix(sid, str(n))
            result[c.name] = sid
        seen.add(sid)
    return result
