"""The routes of a Flask app as the authorization matrices of both services' tests walk them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


def route_table(app: Any, samples: Mapping[str, str]) -> list[tuple[str, str, str, Callable[..., Any]]]:
    """(method, rule, a concrete path built from `samples`, the view function) for every route but
    Flask's static one; a route with an argument `samples` lacks fails, naming it."""
    out = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        missing = rule.arguments - samples.keys()
        assert not missing, f"{rule.rule}: add a sample value for {sorted(missing)} to ARG_SAMPLES"
        path = rule.build({a: samples[a] for a in rule.arguments}, append_unknown=False)[1]
        view = app.view_functions[rule.endpoint]
        out.extend((m, rule.rule, path, view) for m in sorted(rule.methods - {"HEAD", "OPTIONS"}))
    return sorted(out, key=lambda r: r[:3])
