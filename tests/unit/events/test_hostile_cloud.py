"""What the cloud sends the edge worker (cmd/ack, cmd/align, the registry, event ends), fuzzed:
any JSON document on any of those topics is applied or ignored, never an error (issue 10 item 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ovr_events.config import Settings
from ovr_events.worker import Worker
from peers import free_port

NODE = "edge-f"


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Worker:
    tmp: Path = tmp_path_factory.mktemp("hostile-cloud")
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: VM writes fail as VMError
    s = Settings(node_id=NODE, deployment_id="dep-f", data_dir=tmp / "data", run_dir=tmp / "run",
                 users_file=tmp / "users.json", gx_systems=tmp / "gx.json", gx_inventory=tmp / "inv.json",
                 control_file=tmp / "control.json", vm_url=dead, vmagent_url=dead, vm_timeout=0.2)
    return Worker(s)


def active_ids(worker: Worker) -> list[str]:
    """The ids of the active events, starting a temporary one when none is (the fuzz ends them)."""
    if not worker.events.list(state="active"):
        worker.events.start("test", ["pro-1"])
    return [e["id"] for e in worker.events.list(state="active")]


def strategies(real: list[str]) -> tuple[st.SearchStrategy, st.SearchStrategy]:
    ids = st.one_of(st.sampled_from(real), st.uuids().map(str), st.text(max_size=12),
                    st.sampled_from(["", "registry", "x" * 300]))
    scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=16) | ids
    docs = st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
            st.sampled_from(["report_id", "local_event_id", "canonical_event_id", "name", "id", "state", "ended_at",
                             "events", "event_id", "schema", "ts"]) | st.text(max_size=6), inner, max_size=5),
        max_leaves=25,
    )
    topics = st.one_of(
        st.sampled_from([f"ovr/{NODE}/cmd/ack", f"ovr/{NODE}/cmd/align", "ovr/registry/events"]),
        ids.map(lambda i: f"ovr/events/{i}/end"),
    )
    return topics, docs


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_any_cloud_message_is_applied_or_ignored(worker, data):
    topics, docs = strategies(active_ids(worker))
    worker.cloud.handle(data.draw(topics), data.draw(docs))  # never raises


def test_a_deeply_nested_cloud_message_is_dropped(worker):
    class Msg:
        topic = f"ovr/{NODE}/cmd/align"
        payload = b"[" * 100_000 + b"]" * 100_000

    worker.cloud._on_message(None, None, Msg())  # logged and dropped, the subscriber goes on
    json.loads(b"[]")
