"""Check a host's inventory against the argument specs of the project's roles.

Runs as a play's first task (see playbooks/*.yml), before any role starts, so that a wrong
inventory value fails the run with a message that names the variable, what is wrong with it,
and the inventory file that sets it, and nothing on the host has changed yet.

It is stricter than Ansible's automatic argument-spec validation on purpose: that one turns
a string into a one-element list and a number into a string, which hides exactly the typos
operators make. It also catches variables that carry a role prefix but exist in no spec
(``common_firewal_ports``), with the closest real names as a suggestion.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any

import yaml
from ansible.plugins.action import ActionBase

_TYPES = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "list": (list,),
    "dict": (dict,),
    "path": (str,),
    "raw": (object,),
}


def _kind_of(value: Any) -> str:
    """YAML-level type name (Ansible wraps loaded values in tagged subclasses of the builtins)."""
    for base in (bool, int, float, str, list, dict):
        if isinstance(value, base):
            return base.__name__
    return "null" if value is None else type(value).__name__


def _holds_secret(spec: dict[str, Any]) -> bool:
    """True when the option is ``no_log`` or has a ``no_log`` option inside (a list of users)."""
    return bool(spec.get("no_log")) or any(_holds_secret(sub) for sub in (spec.get("options") or {}).values())


def _type_error(value: Any, kind: str, secret: bool = False) -> str | None:
    """What is wrong with the type of ``value``; a ``secret`` value is described, never shown."""
    allowed = _TYPES.get(kind, (object,))
    if kind in ("int", "float") and isinstance(value, bool):
        return f"must be a number ({kind}), got a boolean"
    if not isinstance(value, allowed):
        shown = "" if secret else " " + repr(value)
        if len(shown) > 61:
            shown = shown[:58] + "..."
        hint = ""
        if kind == "list" and isinstance(value, (str, int, float)):
            hint = " (write it as a YAML list: one '- item' per line, or [a, b])"
        elif kind == "str" and isinstance(value, (int, float)) and not isinstance(value, bool):
            hint = " (quote it)"
        elif kind == "bool" and isinstance(value, str):
            hint = " (use true or false without quotes)"
        return f"must be a {kind}, got {_kind_of(value)}{shown}{hint}"
    return None


def validate(name: str, value: Any, spec: dict[str, Any]) -> list[str]:
    """Return human-readable problems of one value against one option spec."""
    # Unrendered templates are checked by the role itself once they resolve.
    if isinstance(value, str) and "{{" in value:
        return []
    kind = spec.get("type", "str")
    secret = _holds_secret(spec)
    err = _type_error(value, kind, secret)
    if err:
        return [f"{name}: {err}"]
    problems: list[str] = []
    choices = spec.get("choices")
    if choices is not None and kind != "list" and value not in choices:
        problems.append(f"{name}: {value!r} is not one of {', '.join(map(str, choices))}")
    if kind == "list":
        elements = spec.get("elements")
        for i, item in enumerate(value):
            item_name = f"{name}[{i}]"
            if elements:
                err = _type_error(item, elements, secret)
                if err:
                    problems.append(f"{item_name}: {err}")
                    continue
            if choices is not None and item not in choices:
                problems.append(f"{item_name}: {item!r} is not one of {', '.join(map(str, choices))}")
            if elements == "dict" and spec.get("options"):
                problems.extend(_validate_options(item_name, item, spec["options"]))
    if kind == "dict" and spec.get("options"):
        problems.extend(_validate_options(name, value, spec["options"]))
    return problems


def _validate_options(name: str, value: dict[str, Any], options: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    for key in value:
        if key not in options:
            problems.append(f"{name}.{key}: unknown key{_suggest(str(key), options)}")
    for key, sub in options.items():
        if key in value:
            problems.extend(validate(f"{name}.{key}", value[key], sub))
        elif sub.get("required"):
            problems.append(f"{name}.{key}: required key is missing")
    return problems


def _suggest(name: str, known: Any) -> str:
    scored = sorted(
        ((difflib.SequenceMatcher(None, name, k).ratio(), k) for k in known), reverse=True
    )
    # Offer the best match, and a runner-up only when it is as plausible.
    close = [k for score, k in scored[:2] if score >= 0.75 and score >= scored[0][0] - 0.01]
    return f" (did you mean {' or '.join(close)}?)" if close else ""


def load_specs(roles_dir: Path) -> dict[str, dict[str, Any]]:
    """Map each role name (its variable prefix) to the options of all its entry points."""
    specs: dict[str, dict[str, Any]] = {}
    for spec_file in sorted(roles_dir.glob("*/meta/argument_specs.yml")):
        data = yaml.safe_load(spec_file.read_text()) or {}
        options: dict[str, Any] = {}
        for entry in (data.get("argument_specs") or {}).values():
            options.update((entry or {}).get("options") or {})
        specs[spec_file.parent.parent.name] = options
    return specs


def find_sources(var: str, dirs: list[Path]) -> list[str]:
    """Inventory files (group_vars/host_vars) that set ``var`` at top level."""
    pattern = re.compile(rf"^{re.escape(var)}\s*:", re.MULTILINE)
    found: list[str] = []
    for base in dirs:
        for sub in ("group_vars", "host_vars"):
            root = base / sub
            if not root.is_dir():
                continue
            for path in sorted(root.rglob("*")):
                if path.is_file() and path.suffix in ("", ".yml", ".yaml", ".json"):
                    try:
                        if pattern.search(path.read_text(errors="replace")):
                            rel = os.path.relpath(path)
                            found.append(str(path) if rel.startswith("..") else rel)
                    except OSError:
                        continue
    return found


def check(task_vars: dict[str, Any], specs: dict[str, dict[str, Any]], dirs: list[Path]) -> list[str]:
    problems: list[str] = []
    prefixes = {role: f"{role}_" for role in specs}
    for var in sorted(task_vars):
        role = next((r for r, p in prefixes.items() if var.startswith(p)), None)
        if role is None:
            continue
        options = specs[role]
        if var not in options:
            msg = f"{var}: unknown variable for role '{role}'{_suggest(var, options)}"
        else:
            found = validate(var, task_vars[var], options[var])
            if not found:
                continue
            msg = "; ".join(found)
        sources = find_sources(var, dirs)
        where = f" — set in {', '.join(sources)}" if sources else " — set in inventory or extra vars"
        problems.append(msg + where)
    return problems


class ActionModule(ActionBase):
    """ovr_inventory_check: fail early on unknown or mistyped role variables."""

    _VALID_ARGS = frozenset(("roles_dir",))

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        project = Path(task_vars.get("playbook_dir", ".")).resolve()
        roles_dir = Path(self._task.args.get("roles_dir") or _find_roles_dir(project))
        specs = load_specs(roles_dir)
        # What the inventory set: host and group vars, without role defaults (no role has run yet).
        host_vars = task_vars.get("hostvars", {}).get(task_vars.get("inventory_hostname"), {})
        names = {k: task_vars[k] for k in host_vars if k in task_vars}
        dirs = [Path(d) for d in {task_vars.get("inventory_dir"), str(project)} if d]
        problems = check(names, specs, dirs)
        result["changed"] = False
        result["checked_roles"] = sorted(specs)
        if problems:
            result["failed"] = True
            result["msg"] = (
                "Inventory problems for host "
                f"{task_vars.get('inventory_hostname')} — fix these and run again "
                "(nothing was changed on the host):\n  - " + "\n  - ".join(problems)
            )
        else:
            result["msg"] = f"inventory matches the argument specs of {', '.join(sorted(specs))}"
        return result


def _find_roles_dir(start: Path) -> Path:
    for candidate in (start, *start.parents):
        if (candidate / "roles").is_dir():
            return candidate / "roles"
    return start / "roles"
