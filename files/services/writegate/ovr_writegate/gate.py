"""One request's series through the checks and the budget: what is kept and what is refused.

Plain functions over a Limits, a SeriesBudget and the parsed series, so tests call them directly.
A series is refused for one reason, the first that applies, in this order: its metric name is not
one the edges send; too many labels; a label name or value too long; the node's budget is spent.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field

from .budget import SeriesBudget
from .config import Limits
from .series import InfluxLine, RemoteSeries

# reason -> the variable of roles/cloud an operator would change
REASONS = {
    "metric_name": "cloud_write_metric_names",
    "too_many_labels": "cloud_write_max_labels",
    "label_name_too_long": "cloud_write_max_label_name_len",
    "label_value_too_long": "cloud_write_max_label_value_len",
    "series_budget": "cloud_write_series_per_node",
}


@dataclass
class Verdict:
    kept: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)  # reason -> one message for a human

    def refuse(self, reason: str, message: str) -> None:
        self.refused[reason] += 1
        self.examples.setdefault(reason, message)

    @property
    def invalid(self) -> bool:
        """Refusals other than the budget: the sender sends something the fleet never takes."""
        return any(r != "series_budget" for r in self.refused)

    def summary(self) -> str:
        return "; ".join(f"{self.refused[r]} series: {self.examples[r]} ({REASONS[r]})" for r in REASONS
                         if r in self.refused)

    def header(self) -> str:
        return ", ".join(f"{r}={self.refused[r]}" for r in REASONS if r in self.refused)


def check_labels(limits: Limits, name: str, labels: list[tuple[str, str]]) -> tuple[str, str] | None:
    """(reason, message) for a series the fleet does not take, None when it passes."""
    if not name or not limits.name_re.fullmatch(name):
        return "metric_name", f"metric name {name!r} is not one the edges send"
    count = sum(1 for k, _ in labels if k != "__name__")
    if count > limits.max_labels:
        return "too_many_labels", f"{name!r} has {count} labels, more than {limits.max_labels}"
    for key, value in labels:
        if len(key) > limits.max_label_name_len:
            return ("label_name_too_long",
                    f"label name {key[:40]!r}… of {name!r} is {len(key)} characters, more than {limits.max_label_name_len}")
        if len(value) > limits.max_label_value_len:
            return ("label_value_too_long",
                    f"label {key!r} of {name!r} is {len(value)} characters long, more than {limits.max_label_value_len}")
    return None


class Gate:
    def __init__(self, limits: Limits, clock=None) -> None:
        import time

        self.limits = limits
        self.budget = SeriesBudget(limits.series_per_node, limits.window_seconds)
        self.clock = clock or time.time
        self._lock = threading.Lock()
        self.refused_total: Counter[tuple[str, str]] = Counter()  # (node, reason)
        self.kept_total: Counter[str] = Counter()

    def _count(self, node: str, verdict: Verdict) -> None:
        with self._lock:
            self.kept_total[node] += verdict.kept
            for reason, n in verdict.refused.items():
                self.refused_total[(node, reason)] += n

    def remote_write(self, node: str, series: list[RemoteSeries]) -> tuple[list[RemoteSeries], Verdict]:
        now, verdict, kept = self.clock(), Verdict(), []
        for s in series:
            key = hash(s.key)
            if self.budget.known(node, key, now):
                kept.append(s)
                continue
            labels = s.labels()
            name = next((v for k, v in labels if k == "__name__"), "")
            bad = check_labels(self.limits, name, labels)
            if bad:
                verdict.refuse(*bad)
            elif self.budget.admit(node, key, now):
                kept.append(s)
            else:
                verdict.refuse("series_budget", f"{node} holds {self.limits.series_per_node} series already "
                                                f"(e.g. refused {name!r})")
        verdict.kept = len(kept)
        self._count(node, verdict)
        return kept, verdict

    def influx(self, node: str, lines: list[InfluxLine]) -> tuple[list[InfluxLine], Verdict]:
        """A line is kept when every series in it is; its admitted series stay counted either way."""
        now, verdict, kept = self.clock(), Verdict(), []
        for line in lines:
            tags = tuple(line.tags)
            ok = True
            for fld, name in zip(line.fields, line.names(), strict=True):
                key = hash((line.measurement, tags, fld))
                if self.budget.known(node, key, now):
                    continue
                bad = check_labels(self.limits, name, list(tags))
                if bad:
                    verdict.refuse(*bad)
                    ok = False
                    break
                if not self.budget.admit(node, key, now):
                    verdict.refuse("series_budget", f"{node} holds {self.limits.series_per_node} series already "
                                                    f"(e.g. refused {name!r})")
                    ok = False
                    break
            if ok:
                kept.append(line)
        verdict.kept = sum(len(line.fields) for line in kept)
        self._count(node, verdict)
        return kept, verdict

    def metrics(self) -> str:
        """Prometheus text: refusals and kept series per node, series held per node."""
        out = ["# HELP ovr_writegate_series_refused_total Series a node sent that were not stored, by reason.",
               "# TYPE ovr_writegate_series_refused_total counter"]
        with self._lock:
            refused, kept = dict(self.refused_total), dict(self.kept_total)
        out += [f'ovr_writegate_series_refused_total{{node_id="{n}",reason="{r}"}} {v}'
                for (n, r), v in sorted(refused.items())]
        out += ["# HELP ovr_writegate_series_kept_total Series (one per sample set) forwarded, per node.",
                "# TYPE ovr_writegate_series_kept_total counter"]
        out += [f'ovr_writegate_series_kept_total{{node_id="{n}"}} {v}' for n, v in sorted(kept.items())]
        out += ["# HELP ovr_writegate_series_held Distinct series a node holds in its budget now.",
                "# TYPE ovr_writegate_series_held gauge"]
        out += [f'ovr_writegate_series_held{{node_id="{n}"}} {v}' for n, v in sorted(self.budget.held().items())]
        out += ["# HELP ovr_writegate_series_budget Distinct series one node may hold (cloud_write_series_per_node).",
                "# TYPE ovr_writegate_series_budget gauge", f"ovr_writegate_series_budget {self.limits.series_per_node}"]
        return "\n".join(out) + "\n"
