"""Registry rules: identity, names, edge lifecycle, fuzzy alignment thresholds, merge, end."""

from __future__ import annotations

import json

import pytest
from ovr_fleet import outbox, registry, reports
from ovr_fleet.store import tx

AUTO, REVIEW = 0.90, 0.80


def queued(conn) -> list[tuple[str, dict | None, bool]]:
    return [(r["topic"], json.loads(r["payload"]) if r["payload"] else None, bool(r["retain"])) for r in outbox.pending(conn)]


def lifecycle(conn, node: str, op: str, event_id: str, name: str, temp: bool = False, **extra):
    with tx(conn):
        return registry.handle_lifecycle(conn, node, "dep", {"op": op, "event": {"id": event_id, "name": name, "temp": temp},
                                                            "ts": 1_760_000_000_000, **extra}, AUTO, REVIEW)


def test_normalize_and_similarity():
    assert registry.normalize("  Boat-Show  2026 ") == registry.normalize("boat show 2026") == "boat show 2026"
    assert registry.similarity("Harbour Festival", "harbour festival") == 1.0
    assert registry.similarity("Harbour Festival", "Harbor Festival") >= AUTO
    assert REVIEW <= registry.similarity("Harbour Fest 2026", "Harbour Festival 2026") < AUTO
    assert registry.similarity("Harbour Festival", "Mountain Rally") < REVIEW


def test_create_gives_a_uuid_and_unique_names_per_deployment(conn):
    with tx(conn):
        ev = registry.create(conn, "Boat Show", "dep", "ada")
        assert len(ev["id"]) == 36 and ev["state"] == "active" and ev["name"] == "Boat Show"
        other = registry.create(conn, "boat  show", "other-dep", "ada")  # another deployment may reuse it
        assert other["id"] != ev["id"]
        with pytest.raises(registry.Conflict) as exc:
            registry.create(conn, "BOAT-show", "dep", "ada")
    assert exc.value.existing["id"] == ev["id"]
    assert exc.value.suggestion.startswith("BOAT-show 20")
    with tx(conn):
        registry.create(conn, exc.value.suggestion, "dep", "ada")
        again = registry.suggest_name(conn, "dep", "BOAT-show", exc.value.existing["created_at"])
    assert again.endswith("(2)")


@pytest.mark.parametrize("bad", ["", "   ", None, 5, "x" * 121, "---"])
def test_create_refuses_bad_names(conn, bad):
    with tx(conn), pytest.raises(registry.Invalid):
        registry.create(conn, bad, "dep", "ada")


def test_an_event_started_on_an_edge_keeps_its_id(conn):
    result = lifecycle(conn, "edge-a", "start", "0b5e7c8a-1111-4a4a-9b9b-000000000001", "Regatta", system_id="gx1")
    assert result == {"op": "start", "event_id": "0b5e7c8a-1111-4a4a-9b9b-000000000001",
                      "local_id": "0b5e7c8a-1111-4a4a-9b9b-000000000001", "action": "created"}
    ev = registry.detail(conn, result["event_id"])
    assert ev["name"] == "Regatta" and ev["source"] == "edge-a"
    assert [(n["node_id"], n["system_id"]) for n in ev["nodes"]] == [("edge-a", "gx1")]
    # Registry republished (retained), no align: the edge's id is canonical.
    assert set(queued(conn)) == {("ovr/registry/events", None, True)}
    # The same start again (a retry) changes nothing.
    assert lifecycle(conn, "edge-a", "start", result["event_id"], "Regatta", system_id="gx1")["action"] == "known"
    assert len(registry.list_events(conn)) == 1


def test_a_second_node_with_the_same_name_is_aligned_to_the_first(conn):
    first = lifecycle(conn, "edge-a", "start", "ev-a", "Regatta 2026")
    second = lifecycle(conn, "edge-b", "start", "ev-b", "regatta  2026")
    assert second["action"] == "aligned" and second["event_id"] == first["event_id"]
    aligns = [q for q in queued(conn) if q[0] == "ovr/edge-b/cmd/align"]
    assert len(aligns) == 1
    body = aligns[0][1]
    assert {k: body[k] for k in ("local_event_id", "canonical_event_id", "name")} == \
        {"local_event_id": "ev-b", "canonical_event_id": "ev-a", "name": "Regatta 2026"}
    assert isinstance(body["ts"], int) and body["schema"] == 1
    # The edge keeps sending its old id until it applied the align: no new event, no second align.
    for _ in range(3):
        assert lifecycle(conn, "edge-b", "add", "ev-b", "regatta 2026", system_id="gx2")["event_id"] == "ev-a"
    assert len([q for q in queued(conn) if q[0] == "ovr/edge-b/cmd/align"]) == 1
    assert len(registry.list_events(conn)) == 1
    # After the align the edge uses the canonical id: known, no new event named like a UUID.
    assert lifecycle(conn, "edge-b", "add", "ev-a", "Regatta 2026")["action"] == "known"


def test_auto_merge_above_the_threshold(conn):
    lifecycle(conn, "edge-a", "start", "ev-a", "Harbour Festival")
    r = lifecycle(conn, "edge-b", "start", "ev-b", "Harbor Festival")
    assert r["action"] == "auto-merged" and r["event_id"] == "ev-a"
    alias = registry.detail(conn, "ev-a")["aliases"][0]
    assert alias["reason"] == "auto" and alias["similarity"] >= AUTO


def test_between_the_thresholds_a_new_event_and_a_review(conn):
    lifecycle(conn, "edge-a", "start", "ev-a", "Harbour Festival 2026")
    r = lifecycle(conn, "edge-b", "start", "ev-b", "Harbour Fest 2026")
    assert r["action"] == "created-review" and r["event_id"] == "ev-b"
    [pending] = registry.alignments(conn)
    assert (pending["node_id"], pending["local_id"], pending["candidate_id"]) == ("edge-b", "ev-b", "ev-a")
    assert REVIEW <= pending["similarity"] < AUTO
    # Seen again: still one open alignment.
    lifecycle(conn, "edge-b", "add", "ev-b", "Harbour Fest 2026", system_id="x")
    assert len(registry.alignments(conn)) == 1


def test_below_review_a_separate_event(conn):
    lifecycle(conn, "edge-a", "start", "ev-a", "Harbour Festival")
    assert lifecycle(conn, "edge-b", "start", "ev-b", "Mountain Rally")["action"] == "created"
    assert registry.alignments(conn) == []


def test_review_keep_separate_and_merge(conn):
    lifecycle(conn, "edge-a", "start", "ev-a", "Harbour Festival 2026")
    lifecycle(conn, "edge-b", "start", "ev-b", "Harbour Fest 2026")
    lifecycle(conn, "edge-c", "start", "ev-c", "Harbour Festivities 2026")
    a1, a2 = registry.alignments(conn)
    with tx(conn):
        assert registry.resolve_alignment(conn, a1["id"], "keep_separate", "ada")["kept"] is True
        with pytest.raises(registry.Invalid):
            registry.resolve_alignment(conn, a1["id"], "merge", "ada")
        merged = registry.resolve_alignment(conn, a2["id"], "merge", "ada")
    assert merged["merged"] == "ev-c" and merged["nodes"] == ["edge-c"]
    assert registry.get(conn, "ev-b")["state"] == "active"
    assert registry.get(conn, "ev-c")["state"] == "merged" and registry.get(conn, "ev-c")["merged_into"] == "ev-a"
    assert registry.alignments(conn) == []
    assert any(t == "ovr/edge-c/cmd/align" and p["canonical_event_id"] == "ev-a" for t, p, _ in queued(conn))
    # Edge-c's nodes are now in ev-a; a message with its old id resolves to ev-a.
    assert {n["node_id"] for n in registry.detail(conn, "ev-a")["nodes"]} == {"edge-a", "edge-c"}
    assert lifecycle(conn, "edge-c", "add", "ev-c", "whatever")["event_id"] == "ev-a"


def test_temp_event_merge_refiles_reports(conn):
    r = lifecycle(conn, "edge-a", "start", "temp-edge-a-1700000000", "temp-edge-a-1700000000", temp=True)
    assert r["action"] == "created-temp"
    assert registry.get(conn, r["event_id"])["temp"] is True
    with tx(conn):
        reports.ingest(conn, "edge-a", {"report_id": "rep-1", "event": {"id": "temp-edge-a-1700000000", "temp": True},
                                        "report": {"summary": {"energy_wh": 5}}})
        canonical = registry.create(conn, "Regatta", "dep", "ada")
        result = registry.merge(conn, canonical["id"], "temp-edge-a-1700000000", None, "ada")
    assert result["reports_refiled"] == 1 and result["nodes"] == ["edge-a"]
    assert [x["report_id"] for x in reports.list_reports(conn, event_id=canonical["id"])] == ["rep-1"]
    assert reports.list_reports(conn, event_id=canonical["id"])[0]["event_id_original"] == "temp-edge-a-1700000000"
    # A temp event is never fuzzy-matched onto another one, and a merged one leaves the registry.
    assert "temp-edge-a-1700000000" not in [e["id"] for e in registry.registry_entries(conn, 30)]


def test_merge_refuses_nonsense(conn):
    with tx(conn):
        ev = registry.create(conn, "Regatta", "dep", "ada")
        with pytest.raises(registry.Invalid):
            registry.merge(conn, ev["id"], ev["id"], None, "ada")
        with pytest.raises(registry.NotFound):
            registry.merge(conn, ev["id"], "never-seen", None, "ada")
        with pytest.raises(registry.NotFound):
            registry.merge(conn, "no-such-event", "x", "edge-a", "ada")


def test_end_publishes_and_keeps_the_ended_state_in_the_registry(conn):
    lifecycle(conn, "edge-a", "start", "ev-a", "Regatta", system_id="gx1")
    with tx(conn):
        outbox.mark_sent(conn, [r["id"] for r in outbox.pending(conn)])
        ev = registry.end(conn, "ev-a", "ada")
    assert ev["state"] == "ended" and ev["ended_at"] and ev["already_ended"] is False
    topics = queued(conn)
    end = next(p for t, p, retain in topics if t == "ovr/events/ev-a/end" and not retain)
    assert end["id"] == end["event_id"] == "ev-a" and end["ended_at"] == ev["ended_at"] and end["schema"] == 1
    assert ("ovr/registry/events", None, True) in topics
    entries = registry.registry_entries(conn, 30)
    assert [(e["id"], e["state"], e["ended_at"]) for e in entries] == [("ev-a", "ended", ev["ended_at"])]
    payload = json.loads(registry.registry_payload(conn, 30))
    assert payload["events"] == entries and payload["schema"] == 1 and isinstance(payload["ts"], int)
    assert all(n["left_at"] for n in registry.participants(conn, "ev-a"))
    with tx(conn):
        assert registry.end(conn, "ev-a", "ada")["already_ended"] is True  # idempotent, broadcast again
    # Ended longer ago than the retention: out of the retained registry.
    with tx(conn):
        conn.execute("UPDATE events SET ended_at = ended_at - 2 * 86400000")
    assert registry.registry_entries(conn, 1) == []


def test_a_node_that_starts_a_cloud_ended_event_is_not_reopened(conn):
    lifecycle(conn, "edge-a", "start", "ev-a", "Regatta")
    with tx(conn):
        registry.end(conn, "ev-a", "ada")
    assert lifecycle(conn, "edge-a", "add", "ev-a", "Regatta")["action"] == "known"
    assert registry.get(conn, "ev-a")["state"] == "ended"


def test_a_name_taken_by_an_ended_event_gets_a_new_name(conn):
    lifecycle(conn, "edge-a", "start", "ev-a", "Regatta")
    with tx(conn):
        registry.end(conn, "ev-a", "ada")
    r = lifecycle(conn, "edge-b", "start", "ev-b", "Regatta")
    assert r["action"] == "created"
    assert registry.get(conn, "ev-b")["name"].startswith("Regatta 20")


def test_add_nodes_and_leaving(conn):
    with tx(conn):
        ev = registry.create(conn, "Regatta", "dep", "ada")
        out = registry.add_nodes(conn, ev["id"], ["edge-a", "ghost"], {"edge-a", "edge-b"})
    assert out == {"event_id": ev["id"], "added": ["edge-a"], "unknown": ["ghost"]}
    lifecycle(conn, "edge-a", "end", ev["id"], "Regatta")
    assert registry.participants(conn, ev["id"])[0]["left_at"] is not None
    with tx(conn):
        registry.end(conn, ev["id"], "ada")
        with pytest.raises(registry.Invalid):
            registry.add_nodes(conn, ev["id"], ["edge-a"], {"edge-a"})


@pytest.mark.parametrize("msg", [{"op": "explode", "event": {"id": "x"}}, {"op": "start"}, {"op": "start", "event": {"id": "a b"}},
                                 {"op": "start", "event": "nope"}])
def test_bad_lifecycle_messages_are_refused(conn, msg):
    from ovr_fleet import protocol

    with tx(conn), pytest.raises(protocol.BadMessage):
        registry.handle_lifecycle(conn, "edge-a", "dep", msg, AUTO, REVIEW)
