"""The one systemd sandbox every ovr-tele unit uses (ours and the overrides of Debian's units).

In a unit template:

    {{ {} | ovr_sandbox }}

gives the strictest block. A unit that needs less strictness names each directive it relaxes,
with the reason, which is written into the unit above the directive:

    {{ {'CapabilityBoundingSet': {'value': 'CAP_NET_BIND_SERVICE',
                                  'why': 'binds 80 and 443 as the caddy user'}} | ovr_sandbox }}

Only directives of the strict block can be relaxed, and only with a reason: a typo or a silent
loosening fails the template instead of shipping a weaker unit. UMask, ReadWritePaths and the
like are the unit's own business and stay in its template."""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

# Directive -> strict value. Order is the order in the unit.
STRICT: dict[str, str] = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "ProtectClock": "yes",
    "ProtectHostname": "yes",
    "ProtectProc": "invisible",
    "RestrictSUIDSGID": "yes",
    "RestrictRealtime": "yes",
    "RestrictNamespaces": "yes",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
    "RemoveIPC": "yes",
    "CapabilityBoundingSet": "",
    "AmbientCapabilities": "",
    "SystemCallArchitectures": "native",
    "SystemCallFilter": "@system-service ~@privileged ~@resources",
    "SystemCallErrorNumber": "EPERM",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
}


def _lines(directive: str, value: str) -> list[str]:
    # systemd takes one deny list per line: "~@a ~@b" on one line would be read as "~@a @b".
    if directive == "SystemCallFilter":
        return [f"SystemCallFilter={part}" for part in value.split()]
    return [f"{directive}={value}"]


def ovr_sandbox(relax: Mapping | None = None) -> str:
    relax = relax or {}
    if not isinstance(relax, Mapping):
        raise AnsibleFilterError(f"ovr_sandbox: expected a mapping of directives to relax, got {type(relax).__name__}")
    unknown = sorted(set(relax) - set(STRICT))
    if unknown:
        raise AnsibleFilterError(f"ovr_sandbox: {', '.join(unknown)} not in the sandbox; relax one of: {', '.join(STRICT)}")
    out = ["# Sandbox: plugins/filter/ovr_sandbox.py (strict unless relaxed below, with the reason)."]
    for directive, strict in STRICT.items():
        if directive not in relax:
            out += _lines(directive, strict)
            continue
        entry = relax[directive]
        if not isinstance(entry, Mapping) or not str(entry.get("why", "")).strip() or "value" not in entry:
            raise AnsibleFilterError(f"ovr_sandbox: relaxing {directive} needs {{'value': ..., 'why': ...}}")
        out.append(f"# relaxed: {' '.join(str(entry['why']).split())}")
        out += _lines(directive, str(entry["value"]))
    return "\n".join(out) + "\n"


class FilterModule:
    def filters(self):
        return {"ovr_sandbox": ovr_sandbox}
