"""What `--tags <tag>` really runs, and whether each task it runs finds the variables it reads.

`--list-tasks` (test_tags.py) shows which tasks a tag selects, not whether they work: a task that
reads a fact another component's task sets (`set_fact`, `register`) stops on an undefined
variable when only its own tag is given. Here every play of site.yml is walked as Ansible runs
it, with the tag rules it applies:

- tags are inherited through `import_tasks`, blocks and the play's role entry; `always` runs
  whatever the tags;
- a dynamic `include_role`/`include_tasks` runs when its own tags match, but the tasks it brings
  in are filtered again by their own tags (plus those of `apply`), so an untagged task file
  included from a tagged task does not run under that tag;
- a handler runs when a task that ran notified it.

For each tag and each task that runs, the Jinja in the task (its templates and the handlers it
notifies included) must only read: role defaults and vars of the play's roles, the roles'
argument specs, magic variables, the task's own `vars`/loop variables, or a fact that a task
that ran *before it under the same tag* set. A read guarded by `is defined` or `default()` is
fine either way. Nothing connects to a host: the roles are read as YAML and Jinja.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from jinja2 import Environment, meta

ROOT = Path(__file__).resolve().parents[2]

MAGIC = {
    "inventory_hostname", "inventory_hostname_short", "inventory_dir", "inventory_file", "hostvars", "groups",
    "group_names", "ansible_facts", "ansible_check_mode", "ansible_diff_mode", "ansible_play_hosts",
    "ansible_play_hosts_all", "ansible_play_batch", "play_hosts", "role_path", "role_name", "playbook_dir",
    "omit", "lookup", "query", "q", "now", "undef", "item", "ansible_loop", "ansible_loop_var", "ansible_host",
    "ansible_connection", "ansible_user", "ansible_run_tags", "ansible_skip_tags", "ansible_version",
    "ansible_limit", "ansible_parent_role_names", "ansible_role_names", "ansible_python_interpreter",
    "ansible_index_var", "ansible_search_path", "ansible_config_file", "ansible_forks", "environment",
    "range", "dict", "lipsum", "cycler", "joiner", "namespace", "true", "false", "none", "True", "False", "None",
    "ansible_managed", "template_host", "template_path", "template_fullpath", "template_destpath",
    "template_uid", "template_run_date", "ansible_become", "ansible_play_name", "ansible_play_role_names",
    "ansible_collection_name", "ansible_dependent_role_names", "ansible_inventory_sources",
}
CONDITIONAL_KEYS = {"when", "that", "failed_when", "changed_when", "until"}
META_KEYS = {"name", "tags", "notify", "listen", "register", "no_log", "become", "become_user", "check_mode",
             "delegate_to", "run_once", "ignore_errors", "loop_control", "vars", "block", "rescue", "always",
             "retries", "delay", "diff", "environment", "changed_when", "failed_when", "when", "loop", "until",
             "with_items", "with_fileglob", "with_dict", "args", "apply", "throttle", "timeout", "any_errors_fatal"}


class _Anything(dict):
    """Filters and tests by any name: parsing needs them to exist, not to work."""

    def __missing__(self, key):
        return lambda *a, **k: None

    def get(self, key, default=None):
        return self[key]

    def __contains__(self, key):
        return True


ENV = Environment(extensions=["jinja2.ext.do", "jinja2.ext.loopcontrols"])
ENV.filters = _Anything()
ENV.tests = _Anything()


def names_in(text: str, bare: bool = False) -> set[str]:
    """Variables a Jinja string (or a bare conditional) reads, minus the ones it guards."""
    if not isinstance(text, str):
        return set()
    if bare:
        text = "{{ (" + text + ") }}"
    elif "{{" not in text and "{%" not in text:
        return set()
    return {n for n in _undeclared(text) if not guarded(text, n)}


def _undeclared(text: str) -> set[str]:
    with warnings.catch_warnings():  # YAML's '\\s' in a regex reaches Jinja's lexer as an escape
        warnings.simplefilter("ignore", DeprecationWarning)
        return meta.find_undeclared_variables(ENV.parse(text))


def guarded(text: str, name: str) -> bool:
    path = rf"\b{re.escape(name)}\b(?:\.\w+|\[[^\]]*\])*"
    return re.search(path + r"\s*(?:is\s+(?:not\s+)?defined|\|\s*(?:default|d)\b)", text) is not None


def template_names(path: Path) -> set[str]:
    text = path.read_text()
    return {n for n in _undeclared(text) if not guarded(text, n)}


def _strings(value, key: str | None = None) -> Iterator[tuple[str, bool]]:
    if isinstance(value, str):
        yield value, key in CONDITIONAL_KEYS
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v, key)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, k if key in (None, "vars") or k in CONDITIONAL_KEYS else key)


@dataclass
class Task:
    role: str
    name: str
    tags: frozenset[str]
    reads: set[str]
    sets: set[str]
    notify: list[str]
    local: set[str] = field(default_factory=set)  # the task's vars and loop variables
    listen: list[str] = field(default_factory=list)  # a handler's names
    include_tags: frozenset[str] | None = None  # set on a task a dynamic include brought in


def _as_list(v) -> list:
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


def _module(task: dict) -> tuple[str, object]:
    for k, v in task.items():
        if k not in META_KEYS:
            return k.rsplit(".", 1)[-1], v
    return "", None


class Play:
    def __init__(self, roles: list[str], play_tags: dict[str, list[str]]):
        self.roles = roles
        self.play_tags = {r: frozenset(t) for r, t in play_tags.items()}
        self.static = set(MAGIC)
        for role in roles:
            self.static |= self._role_static(role)
        self.handlers: dict[str, list[Task]] = {}
        self.tasks: list[Task] = []
        for role in roles:
            for h in self._load(role, "handlers/main.yml", frozenset()):
                for listen in [h.name, *h.listen]:
                    self.handlers.setdefault(listen, []).append(h)
            self.tasks += self._load(role, "tasks/main.yml", frozenset(play_tags.get(role, [])))

    @staticmethod
    def _role_static(role: str) -> set[str]:
        base = ROOT / "roles" / role
        out: set[str] = set()
        for rel in ("defaults/main.yml", "vars/main.yml"):
            f = base / rel
            if f.exists():
                out |= set(yaml.safe_load(f.read_text()) or {})
        spec = base / "meta/argument_specs.yml"
        if spec.exists():
            for entry in (yaml.safe_load(spec.read_text()).get("argument_specs") or {}).values():
                out |= set((entry or {}).get("options") or {})
        return out

    def _load(self, role: str, rel: str, tags: frozenset[str],
              inherited_local: set[str] | None = None) -> list[Task]:
        data = yaml.safe_load((ROOT / "roles" / role / rel).read_text()) or []
        return list(self._walk(role, data, tags, inherited_local or set(), rel))

    def _walk(self, role: str, items: list, tags: frozenset[str], local: set[str], rel: str) -> Iterator[Task]:
        for raw in items:
            t_tags = tags | set(_as_list(raw.get("tags")))
            t_local = local | set(raw.get("vars") or {})
            if "loop_control" in raw and "loop_var" in raw["loop_control"]:
                t_local.add(raw["loop_control"]["loop_var"])
            if "block" in raw:
                for part in ("block", "rescue", "always"):
                    yield from self._walk(role, raw.get(part) or [], t_tags, t_local, rel)
                continue
            module, args = _module(raw)
            reads: set[str] = set()
            for text, bare in _strings(raw):
                reads |= names_in(text, bare)
            sets = set(_as_list(raw.get("register")))
            if module == "set_fact" and isinstance(args, dict):
                sets |= {k for k in args if k != "cacheable"}
            task = Task(role, raw.get("name", module), frozenset(t_tags), reads - t_local, sets,
                        _as_list(raw.get("notify")), local=t_local, listen=_as_list(raw.get("listen")))
            if module == "template" and isinstance(args, dict) and "{{" not in str(args.get("src", "")):
                task.reads |= template_names(ROOT / "roles" / role / "templates" / args["src"]) - t_local
            if module == "import_tasks":
                yield from self._load(role, f"tasks/{args}", frozenset(t_tags), inherited_local=t_local)
                continue
            if module in ("include_role", "include_tasks"):
                # Dynamic: the include itself is a task (it reads its own vars); what it brings in
                # runs under its own tags plus `apply`'s, not the include's.
                yield task
                if isinstance(args, str) and "{{" in args:
                    continue  # a path known only at run time (python_service's config tasks): not followed
                apply = set(_as_list(((args or {}).get("apply") or {}).get("tags")))
                sub_role = args.get("name", role) if module == "include_role" else role
                sub_rel = f"tasks/{args.get('tasks_from', 'main')}.yml" if module == "include_role" else f"tasks/{args}"
                role_tags = self.play_tags.get(role, frozenset())  # a role entry's tags do reach them
                for sub in self._load(sub_role, sub_rel, role_tags | apply, inherited_local=t_local):
                    sub.include_tags = frozenset(t_tags)
                    yield sub
                continue
            yield task

    @staticmethod
    def runs(task: Task, tag: str | None) -> bool:
        include = task.include_tags
        if include is not None and tag is not None and not (include & {tag, "always"}):
            return False
        return tag is None or bool(task.tags & {tag, "always"})

    def problems(self, tag: str | None) -> list[str]:
        """Each read of a fact that no task run before it (under `--tags tag`) has set."""
        dynamic = {n for t in self.tasks for n in t.sets} | {n for hs in self.handlers.values() for h in hs
                                                            for n in h.sets}
        known: set[str] = set()
        out: list[str] = []
        notified: list[str] = []
        for task in self.tasks:
            if not self.runs(task, tag):
                continue
            for name in sorted((task.reads & dynamic) - known - task.sets - self.static - task.local):
                out.append(f"{task.role} : {task.name} reads {name}, which no task run before it set")
            known |= task.sets
            notified += task.notify
        seen: set[str] = set()
        while notified:
            listen = notified.pop()
            if listen in seen:
                continue
            seen.add(listen)
            for h in self.handlers.get(listen, []):
                for name in sorted((h.reads & dynamic) - known - h.sets - self.static - h.local):
                    out.append(f"handler {h.role} : {h.name} reads {name}, which no task run before it set")
                known |= h.sets
                notified += h.notify
        return out

    def skipped_by_include(self, tag: str | None) -> list[str]:
        """Tasks a dynamic include brings in under `--tags tag` that then do not run: the include
        does nothing, silently (a component's firewall rule not written, say)."""
        return [f"{task.role} : {task.name} (included from a task tagged {sorted(task.include_tags)})"
                for task in self.tasks
                if task.include_tags is not None and tag is not None
                and task.include_tags & {tag, "always"} and not self.runs(task, tag)]

    def tags(self) -> set[str]:
        return {t for task in self.tasks for t in task.tags} - {"always"}


def site_plays() -> list[Play]:
    """The plays of site.yml, with their roles and the tags of each role entry."""
    out = []
    site = yaml.safe_load((ROOT / "site.yml").read_text())
    for entry in site:
        for play in yaml.safe_load((ROOT / entry["ansible.builtin.import_playbook"]).read_text()):
            roles = [r["role"] for r in play["roles"]]
            out.append(Play(roles, {r["role"]: _as_list(r.get("tags")) for r in play["roles"]}))
    return out

