"""Small network filters used by preflight checks (stdlib only, no netaddr on the controller)."""

from __future__ import annotations

import ipaddress
from typing import Any


def ovr_invalid_cidrs(values: list[Any]) -> list[str]:
    """Entries of ``values`` that are not IPv4/IPv6 networks."""
    bad = []
    for value in values:
        try:
            ipaddress.ip_network(str(value), strict=False)
        except ValueError:
            bad.append(str(value))
    return bad


def ovr_ip_in_cidrs(address: str, cidrs: list[str]) -> bool:
    """True when ``address`` is inside any of ``cidrs`` (or ``cidrs`` is empty)."""
    if not cidrs:
        return True
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(c, strict=False) for c in cidrs if not ovr_invalid_cidrs([c]))


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"ovr_invalid_cidrs": ovr_invalid_cidrs, "ovr_ip_in_cidrs": ovr_ip_in_cidrs}
