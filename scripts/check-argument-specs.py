#!/usr/bin/env python3
"""Every public role variable is declared in meta/argument_specs.yml, and nothing more.

For each role: the keys of defaults/main.yml must equal the options of the `main` entry point,
each option needs a description, and a declared default must equal the one in defaults/main.yml.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml


def check_role(role: Path) -> list[str]:
    problems: list[str] = []
    spec_file = role / "meta" / "argument_specs.yml"
    defaults_file = role / "defaults" / "main.yml"
    if not spec_file.exists():
        return [f"{role.name}: no meta/argument_specs.yml"]
    spec = (yaml.safe_load(spec_file.read_text()) or {}).get("argument_specs", {})
    options = (spec.get("main") or {}).get("options") or {}
    defaults = (yaml.safe_load(defaults_file.read_text()) if defaults_file.exists() else None) or {}
    for name in sorted(set(defaults) - set(options)):
        problems.append(f"{role.name}: {name} is in defaults/main.yml but not in meta/argument_specs.yml")
    for name in sorted(set(options) - set(defaults)):
        if not options[name].get("required"):
            problems.append(f"{role.name}: {name} is declared but has no default in defaults/main.yml")
    for entry_name, entry in spec.items():
        for name, opt in ((entry or {}).get("options") or {}).items():
            if not opt.get("description"):
                problems.append(f"{role.name}: {entry_name}.{name} has no description")
            if not name.startswith(f"{role.name}_"):
                problems.append(f"{role.name}: {name} does not carry the role prefix {role.name}_")
            if entry_name == "main" and "default" in opt and name in defaults and opt["default"] != defaults[name]:
                problems.append(
                    f"{role.name}: default of {name} differs: spec {opt['default']!r} vs defaults {defaults[name]!r}"
                )
    return problems


def main() -> int:
    roles = sorted(p for p in Path("roles").iterdir() if p.is_dir())
    problems = [msg for role in roles for msg in check_role(role)]
    for msg in problems:
        print(msg, file=sys.stderr)
    print(f"argument specs: {len(roles)} roles checked, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
