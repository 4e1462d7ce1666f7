"""`--tags <component>` must work: an operator touches one thing (STYLE.md), e.g.
`ansible-playbook site.yml --tags vmagent --limit boat-7`. Every role's preflight checks the
inventory and resolves facts the components use (the edge's cloud credentials, for one), so it
runs whatever the tags; a component's own facts come from its own tasks.

Checked with `--list-tasks`, and by walking the roles with Ansible's tag rules (tagflow.py): what
each tag alone reads and includes. Neither needs a host."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import tagflow

ROOT = Path(__file__).resolve().parents[1].parent
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
COMPONENTS = ["mosquitto", "victoriametrics", "vmagent", "telegraf", "gx", "events", "config", "health", "caddy",
              "fleet", "tls", "credentials", "firewall", "journald", "layout", "packages", "ssh", "timesync",
              "upgrades", "gxsim_simulator", "writegate", "web"]


def listed(tags: str) -> set[str]:
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    out = subprocess.run([str(ANSIBLE_PLAYBOOK), "-i", "inventory/demo", "site.yml", "--list-tasks", "--tags", tags],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True).stdout
    return {m[1].strip() for m in re.finditer(r"^\s{6}(\S.*?)\tTAGS:", out, re.M)}


@pytest.fixture(scope="module")
def listings() -> dict[str, set[str]]:
    """The task list of every component tag and of the preflights (ansible-playbook runs at once)."""
    tags = ["preflight,gxsim_preflight", *COMPONENTS]
    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(tags, pool.map(listed, tags), strict=True))


@pytest.fixture(scope="module")
def preflight(listings) -> set[str]:
    tasks = {t for t in listings["preflight,gxsim_preflight"] if "Validating arguments" not in t
             and t != "Check inventory against the roles' argument specs"}
    assert {t.split(" : ")[0] for t in tasks} >= {"common", "edge", "cloud", "gxsim"}, tasks
    return tasks


@pytest.mark.parametrize("tag", COMPONENTS)
def test_every_component_tag_runs_the_preflight(listings, preflight, tag):
    missing = preflight - listings[tag]
    assert not missing, f"--tags {tag} skips preflight tasks: {sorted(missing)[:5]}"


def test_caddy_alone_knows_the_victoriametrics_version(listings):
    """The Caddyfile's handshake answer depends on it (ADR 10): --tags caddy must read it."""
    assert "cloud : Read the installed VictoriaMetrics version" in listings["caddy"]


# What the selected tasks then read and bring in (tests/unit/tagflow.py: the roles read as
# YAML and Jinja, with Ansible's tag rules). --list-tasks above shows a tag selects the
# preflight; these show each tag alone finds every fact it reads, and that a dynamic include
# it runs does not silently skip the tasks it includes.
PLAYS = tagflow.site_plays()
PLAY_TAGS = [(play, tag) for play in PLAYS for tag in [None, *sorted(play.tags())]]


def _id(case) -> str:
    play, tag = case
    return f"{'+'.join(play.roles)}:{tag or 'all'}"


@pytest.mark.parametrize("case", PLAY_TAGS, ids=[_id(c) for c in PLAY_TAGS])
def test_each_tag_alone_reads_only_facts_it_sets(case):
    play, tag = case
    problems = play.problems(tag)
    assert not problems, f"--tags {tag}: " + "; ".join(problems)


@pytest.mark.parametrize("case", PLAY_TAGS, ids=[_id(c) for c in PLAY_TAGS])
def test_each_tag_runs_the_tasks_its_includes_bring_in(case):
    play, tag = case
    skipped = play.skipped_by_include(tag)
    assert not skipped, f"--tags {tag} includes but then skips: " + "; ".join(skipped)


def test_tagflow_sees_a_fact_from_an_untagged_task():
    """The checker itself: vmagent's tasks read the cloud credentials preflight resolves; were
    preflight not `always`, --tags vmagent would read them unset (issue 11)."""
    edge = next(p for p in tagflow.site_plays() if "edge" in p.roles)  # a copy of its own: altered below
    for task in edge.tasks:
        if task.role == "edge" and "preflight" in task.tags:
            task.tags = task.tags - {"always"}
    assert any("reads __edge_cloud" in p for p in edge.problems("vmagent"))
    assert any("reads __edge_cloud" in p for p in edge.problems("mosquitto"))


def test_components_lists_every_tag_of_the_roles():
    """A tag added to a role gets the --list-tasks preflight check above too."""
    roles = {role for play in PLAYS for role in play.roles}
    tags = {tag for play in PLAYS for tag in play.tags()} - roles - {"preflight", "gxsim_preflight"}
    assert tags <= set(COMPONENTS), f"add to COMPONENTS: {sorted(tags - set(COMPONENTS))}"
