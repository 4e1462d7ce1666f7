"""Helpers for the Victron Starlark processor tests: locate the real Telegraf, render the role
template with the role defaults, write mqtt_consumer-shaped fixtures, run Telegraf, parse output.
(A uniquely named module, so it never clashes with other test directories' conftest.py.)"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import peers
import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
STAR = REPO / "files/services/telegraf/victron_mqtt.star"
TEMPLATES = REPO / "roles/edge/templates"
DEFAULTS = REPO / "roles/edge/defaults/main.yml"
REQUIRED_PLUGINS = (
    "inputs.file",
    "inputs.mqtt_consumer",
    "processors.starlark",
    "outputs.file",
    "parsers.influx",
    "parsers.value",
    "serializers.influx",
)


from peers import locate_mosquitto  # noqa: E402,F401 (re-exported)


def locate_telegraf() -> str:
    """The real Telegraf: $TELEGRAF_BIN, else whatever scripts/build-telegraf.sh prints.

    Never skips: without a Telegraf that has the plugins above the tests fail and say why."""
    path = peers.locate_telegraf()
    plugins = subprocess.run(
        [path, "plugins"], capture_output=True, text=True, timeout=60, check=False
    ).stdout.split()
    missing = [p for p in REQUIRED_PLUGINS if p not in plugins]
    if missing:
        pytest.fail(f"telegraf at {path} lacks plugins {missing}; rebuild with those build tags")
    return path


def role_defaults() -> dict[str, Any]:
    return yaml.safe_load(DEFAULTS.read_text())


def render_processor_conf(script_path: Path | str = STAR, **overrides: Any) -> str:
    """Render the role template the way the template module does (trim_blocks, Ansible filters)."""
    from ansible.plugins.filter.core import FilterModule

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        keep_trailing_newline=True,
    )
    for name, func in FilterModule().filters().items():
        env.filters.setdefault(name, func)  # keep Jinja's own default/d etc.
    variables = role_defaults() | {"edge_victron_processor_script_path": str(script_path)}
    variables |= overrides
    return env.get_template("victron_processor.conf.j2").render(**variables)


# ---- Influx line protocol: just enough to write fixtures and read Telegraf's output ----------


def _escape_key(s: str) -> str:
    return s.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def _escape_str(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')


def mqtt_line(topic: str | None, payload: str, tags: dict[str, str] | None = None) -> str:
    """One metric exactly as inputs.mqtt_consumer emits it with data_format=value/string."""
    all_tags = dict(tags or {})
    if topic is not None:
        all_tags["topic"] = topic
    tag_part = "".join(f",{_escape_key(k)}={_escape_key(v)}" for k, v in sorted(all_tags.items()))
    return f'mqtt_consumer{tag_part} value="{_escape_str(payload)}"'


@dataclass
class Metric:
    name: str
    tags: dict[str, str]
    fields: dict[str, Any]
    time: int


def _split_unescaped(s: str, sep: str) -> list[str]:
    parts, cur, i, quoted = [], [], 0, False
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            cur.append(s[i : i + 2])
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        if c == sep and not quoted:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    parts.append("".join(cur))
    return parts


def _unescape(s: str) -> str:
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and i + 1 < len(s):
            out.append(s[i + 1])
            i += 2
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def _field_value(raw: str) -> Any:
    if raw.startswith('"'):
        return _unescape(raw[1:-1])
    if raw.endswith(("i", "u")):
        return int(raw[:-1])
    if raw in ("true", "false"):
        return raw == "true"
    return float(raw)


def parse_lines(text: str) -> list[Metric]:
    metrics = []
    for line in text.splitlines():
        if not line.strip():
            continue
        head, fields_part, ts = _split_unescaped(line, " ")
        name, *tag_parts = _split_unescaped(head, ",")
        tags = dict(tuple(_unescape(x) for x in _split_unescaped(t, "=")) for t in tag_parts)
        fields = {}
        for f in _split_unescaped(fields_part, ","):
            k, v = f.split("=", 1)
            fields[_unescape(k)] = _field_value(v)
        metrics.append(Metric(_unescape(name), tags, fields, int(ts)))
    return metrics


# ---- running Telegraf -------------------------------------------------------------------------


@dataclass
class Run:
    metrics: list[Metric]
    stderr: str

    def errors(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if " E! " in line]

    def victron(self) -> list[Metric]:
        return [m for m in self.metrics if m.name.startswith("victron_") and m.name != "victron_processor"]

    def counters(self) -> list[Metric]:
        return [m for m in self.metrics if m.name == "victron_processor"]

    def final_counters(self, system_id: str) -> dict[tuple[str, str | None], int]:
        """Last emitted value per (field, reason) for one source; also checks they never decrease."""
        last: dict[tuple[str, str | None], int] = {}
        for m in self.counters():
            if m.tags.get("system_id") != system_id:
                continue
            ((field, value),) = m.fields.items()
            key = (field, m.tags.get("reason"))
            assert value >= last.get(key, 0), f"counter {key} went down: {last[key]} -> {value}"
            last[key] = value
        return last


MAIN_CONF = """\
[global_tags]
  node_id = "edge-test"
[agent]
  omit_hostname = true
  metric_batch_size = 100000
  metric_buffer_limit = 100000
[[inputs.file]]
  files = [{fixture}]
  data_format = "influx"
[[outputs.file]]
  files = [{out}]
  data_format = "influx"
"""


def toml_str(p: Path | str) -> str:
    return '"' + str(p).replace("\\", "\\\\").replace('"', '\\"') + '"'


def make_runner(telegraf_bin: str, tmp_path: Path) -> Callable[..., Run]:
    """Feed recorded mqtt_consumer lines through Telegraf + the rendered processor (--once)."""
    counter = iter(range(1000))

    def run(lines: Iterable[str], expect_rc: int = 0, **overrides: Any) -> Run:
        d = tmp_path / f"run{next(counter)}"
        (d / "telegraf.d").mkdir(parents=True)
        fixture, out = d / "fixture.influx", d / "out.influx"
        fixture.write_text("\n".join(lines) + "\n")
        (d / "telegraf.conf").write_text(MAIN_CONF.format(fixture=toml_str(fixture), out=toml_str(out)))
        (d / "telegraf.d/victron_processor.conf").write_text(render_processor_conf(**overrides))
        proc = subprocess.run(
            [telegraf_bin, "--config", str(d / "telegraf.conf"),
             "--config-directory", str(d / "telegraf.d"), "--once"],
            capture_output=True, text=True, timeout=60, check=False,
        )
        assert proc.returncode == expect_rc, f"telegraf rc={proc.returncode}\n{proc.stderr[-4000:]}"
        text = out.read_text() if out.exists() else ""
        return Run(parse_lines(text), proc.stderr)

    return run


def find_free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
