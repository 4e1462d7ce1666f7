"""Render a role's unit template as Ansible would, for tests that read or verify the unit file.

The role's vars/main.yml and defaults/main.yml are the context (plain values; a template that
needs a computed one gets it through `extra`), with the project's own filters and `comment`."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import jinja2
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _plugin_filters(name: str) -> dict:
    spec = importlib.util.spec_from_file_location(name, ROOT / f"plugins/filter/{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod.FilterModule().filters()


def _filters() -> dict:
    return {**_plugin_filters("ovr_sandbox"), **_plugin_filters("ovr_mosquitto"),
            "dirname": lambda p: str(Path(p).parent), "basename": lambda p: Path(p).name,
            "comment": lambda text: "\n".join(f"# {line}" for line in str(text).splitlines())}


def render_unit(role: str, unit: str, **extra) -> str:
    base = ROOT / "roles" / role
    context: dict = {"ansible_managed": "Ansible managed"}
    for part in ("defaults", "vars"):
        f = base / part / "main.yml"
        if f.exists():
            context.update(yaml.safe_load(f.read_text()) or {})
    context.update(extra)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(base / "templates")), keep_trailing_newline=True,
                             undefined=jinja2.StrictUndefined)
    env.filters.update(_filters())
    return env.get_template(f"{unit}.j2").render(context)
