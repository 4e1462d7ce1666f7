"""dbus-flashmq behaviour of the state machine, driven by a fake clock (no broker)."""

from __future__ import annotations

import json

import pytest
from gxsim_testlib import PORTAL, FakeClock
from ovr_gxsim.flashmq import GxState, Message
from ovr_gxsim.profile import DEFAULT_PROFILE, load_profile

N = f"N/{PORTAL}/"
SUPPRESS = b'{"keepalive-options":["suppress-republish"]}'


@pytest.fixture
def state(clock: FakeClock) -> GxState:
    profile = load_profile(DEFAULT_PROFILE, PORTAL)
    return GxState(PORTAL, profile.devices, clock)


def topics(msgs: list[Message]) -> list[str]:
    return [m.topic for m in msgs]


def value(msg: Message) -> object:
    return json.loads(msg.payload)["value"]


def keepalive(state: GxState, payload: bytes = b"") -> list[Message]:
    return state.handle(f"R/{PORTAL}/keepalive", payload)


def write(state: GxState, path: str, payload: bytes | str) -> list[Message]:
    if isinstance(payload, str):
        payload = payload.encode()
    return state.handle(f"W/{PORTAL}/{path}", payload)


# --- start, retained serial, keepalive ---------------------------------------------------


def test_start_publishes_only_retained_serial_and_keepalive_marker(state: GxState) -> None:
    out = state.start()
    assert out == [
        Message(N + "system/0/Serial", b'{"value":"c0ffee000001"}', retain=True),
        Message(N + "keepalive", b"1", retain=False),
    ]
    assert not state.alive
    # Values change, but nothing is published without a keepalive.
    assert state.update({"system/0/Dc/Battery/Soc": 12.3}) == []
    assert state.tick() == []


def test_serial_is_the_only_retained_topic(state: GxState) -> None:
    out = keepalive(state)
    retained = [m.topic for m in out if m.retain]
    assert retained == [N + "system/0/Serial"]


def test_plain_keepalive_republishes_everything_then_completion(
    state: GxState, clock: FakeClock
) -> None:
    state.start()
    out = keepalive(state)
    item_topics = {N + k for k in state.items}
    published = topics(out)
    assert set(published[: len(item_topics)]) == item_topics
    assert published[len(item_topics)] == N + "full_publish_completed"
    assert json.loads(out[len(item_topics)].payload) == {"value": int(clock())}
    assert published[-1] == N + "heartbeat"  # first heartbeat right away
    assert len(out) == len(item_topics) + 2
    assert state.alive


def test_full_publish_completed_echoes_the_token(state: GxState) -> None:
    payload = b'{"keepalive-options":[{"full-publish-completed-echo":"B9FMlGWoCcfMKc"}]}'
    out = keepalive(state, payload)
    done = [m for m in out if m.topic == N + "full_publish_completed"]
    assert len(done) == 1
    doc = json.loads(done[0].payload)
    assert doc["full-publish-completed-echo"] == "B9FMlGWoCcfMKc"
    assert isinstance(doc["value"], int)


def test_suppress_republish_extends_alive_without_republishing(
    state: GxState, clock: FakeClock
) -> None:
    out = keepalive(state, SUPPRESS)
    assert topics(out) == [N + "heartbeat"]
    assert state.alive
    clock.advance(50)
    assert keepalive(state, SUPPRESS) == []  # heartbeat already running
    clock.advance(50)  # 100 s after the first, 50 s after the last keepalive
    assert state.alive


def test_legacy_serial_read_is_a_keepalive_and_a_read(state: GxState) -> None:
    out = state.handle(f"R/{PORTAL}/system/0/Serial", SUPPRESS)
    assert state.alive
    assert topics(out) == [N + "heartbeat", N + "system/0/Serial"]


def test_keepalive_expires_after_60_seconds(state: GxState, clock: FakeClock) -> None:
    keepalive(state, SUPPRESS)
    clock.advance(59.9)
    assert state.alive
    assert topics(state.update({"battery/512/Soc": 1.5})) == [N + "battery/512/Soc"]
    clock.advance(0.1)
    assert not state.alive
    assert state.update({"battery/512/Soc": 2.5}) == []
    # The heartbeat stops too: nothing at all for the next minutes, and no nulls.
    for _ in range(300):
        clock.advance(1)
        assert state.tick() == []


def test_later_keepalive_restarts_the_60_seconds(state: GxState, clock: FakeClock) -> None:
    keepalive(state, SUPPRESS)
    clock.advance(50)
    keepalive(state, SUPPRESS)
    clock.advance(59)
    assert state.alive
    clock.advance(1)
    assert not state.alive


def test_keepalive_timeout_is_configurable(clock: FakeClock) -> None:
    profile = load_profile(DEFAULT_PROFILE, PORTAL)
    state = GxState(PORTAL, profile.devices, clock, keepalive_timeout=2.0)
    keepalive(state, SUPPRESS)
    clock.advance(1.9)
    assert state.alive
    clock.advance(0.1)
    assert not state.alive


def test_heartbeat_every_3_seconds_while_alive(state: GxState, clock: FakeClock) -> None:
    start = clock()
    beats = [start] if N + "heartbeat" in topics(keepalive(state, SUPPRESS)) else []
    for _ in range(239):  # 59.75 s in 0.25 s steps
        clock.advance(0.25)
        for m in state.tick():
            assert m.topic == N + "heartbeat"
            assert value(m) == int(clock())
            beats.append(clock())
    offsets = [b - start for b in beats]
    assert offsets == [3.0 * i for i in range(20)]


def test_only_changed_values_are_published(state: GxState) -> None:
    keepalive(state, SUPPRESS)
    soc = state.value("battery/512/Soc")
    assert state.update({"battery/512/Soc": soc}) == []
    out = state.update({"battery/512/Soc": soc + 1, "battery/512/Capacity": 300})
    assert out == [Message(N + "battery/512/Soc", json.dumps({"value": soc + 1}, separators=(",", ":")).encode())]
    # 1 and 1.0 are different on the wire, so that is a change too.
    assert topics(state.update({"battery/512/Capacity": 300.0})) == [N + "battery/512/Capacity"]


def test_full_republish_rate_limited_to_3_per_second(state: GxState, clock: FakeClock) -> None:
    keepalive(state)  # 1 of 3
    completions = 1
    for _ in range(9):
        completions += topics(keepalive(state)).count(N + "full_publish_completed")
    assert completions == 3
    assert state.full_publishes == 3
    assert state.alive  # rate-limited keepalives still extend alive
    clock.advance(1.0)
    for _ in range(10):
        keepalive(state)
    assert state.full_publishes == 6
    # Suppressed keepalives never use a token.
    clock.advance(1.0)
    for _ in range(10):
        keepalive(state, SUPPRESS)
    assert state.full_publishes == 6
    assert topics(keepalive(state)).count(N + "full_publish_completed") == 1


def test_republish_sends_current_values_after_a_silent_period(
    state: GxState, clock: FakeClock
) -> None:
    state.update({"battery/512/Soc": 42.0})  # changed while nobody listened
    out = keepalive(state)
    soc = [m for m in out if m.topic == N + "battery/512/Soc"]
    assert [value(m) for m in soc] == [42.0]


# --- read requests -----------------------------------------------------------------------


def test_read_single_path_answers_even_when_not_alive(state: GxState) -> None:
    assert not state.alive
    out = state.handle(f"R/{PORTAL}/vebus/276/Mode", b"")
    assert out == [Message(N + "vebus/276/Mode", b'{"value":3}')]


def test_read_subtree_republishes_every_leaf(state: GxState) -> None:
    out = state.handle(f"R/{PORTAL}/settings/0/Settings/SystemSetup", b"")
    assert sorted(topics(out)) == sorted(
        N + k for k in state.items if k.startswith("settings/0/Settings/SystemSetup/")
    )
    assert len(out) == 5
    name = next(m for m in out if m.topic.endswith("/SystemName"))
    assert json.loads(name.payload) == {"max": 0, "min": 0, "value": "Pro 6005 demo"}
    acin = next(m for m in out if m.topic.endswith("/AcInput1"))
    assert acin.payload == b'{"max":3,"min":0,"value":3}'


def test_read_subtree_of_a_whole_device_branch(state: GxState) -> None:
    out = state.handle(f"R/{PORTAL}/solarcharger/279/Dc", b"")
    assert sorted(topics(out)) == [N + "solarcharger/279/Dc/0/Current",
                                   N + "solarcharger/279/Dc/0/Voltage"]


@pytest.mark.parametrize(
    "topic",
    [
        f"R/{PORTAL}/vebus/276/NoSuchPath",
        f"R/{PORTAL}/vebus/276/Ac/Ou",  # a prefix that is not a whole segment
        f"R/{PORTAL}/vebus/+/Mode",
        f"R/{PORTAL}/vebus/276/#",
        f"R/{PORTAL}/vebus/276",
        "R/0123456789ab/vebus/276/Mode",  # another GX
    ],
)
def test_unknown_wildcard_or_foreign_reads_are_ignored(state: GxState, topic: str) -> None:
    assert state.handle(topic, b"") == []


def test_batteries_is_a_list_value(state: GxState) -> None:
    out = state.handle(f"R/{PORTAL}/system/0/Batteries", b"")
    assert isinstance(value(out[0]), list)


# --- write requests ----------------------------------------------------------------------

WRITABLE = {
    "vebus/276/Mode": ([1, 2, 3, 4, 2.0], [0, 5, 2.5, -1]),
    "vebus/276/Ac/ActiveIn/CurrentLimit": ([0, 0.5, 16, 32.5, 50], [-0.1, 50.5, 100]),
    "vebus/276/Dc/0/MaxChargeCurrent": ([0, 10, 199.5, 200], [-1, 200.1, 1000]),
    "vebus/276/Settings/InverterOutputVoltage": ([210, 220, 244.9, 245], [209.9, 245.1, 0]),
}


@pytest.mark.parametrize(
    ("path", "good"), [(p, v) for p, (goods, _) in WRITABLE.items() for v in goods]
)
def test_valid_write_updates_value_and_echoes_while_alive(
    state: GxState, path: str, good: float
) -> None:
    keepalive(state, SUPPRESS)
    if state.value(path) == good:  # make sure it is a change
        write(state, path, json.dumps({"value": 4 if "Mode" in path else 1}))
    out = write(state, path, json.dumps({"value": good}))
    assert topics(out) == [N + path]
    assert value(out[0]) == good
    assert state.value(path) == good
    if path.endswith("/Mode"):
        assert isinstance(state.value(path), int)  # 2.0 is stored as 2


@pytest.mark.parametrize(
    ("path", "bad"), [(p, v) for p, (_, bads) in WRITABLE.items() for v in bads]
)
def test_out_of_range_write_is_ignored(state: GxState, path: str, bad: float) -> None:
    keepalive(state, SUPPRESS)
    before = state.value(path)
    assert write(state, path, json.dumps({"value": bad})) == []
    assert state.value(path) == before


@pytest.mark.parametrize(
    "payload",
    [
        '{"value": "3"}',
        '{"value": null}',
        '{"value": true}',
        '{"value": [3]}',
        '{"value": {"v": 3}}',
        '{"val": 3}',
        "[3]",
        "3",
        "not json",
        "",
        b"\xff\xfe",
        '{"value": NaN}',
    ],
)
@pytest.mark.parametrize("path", list(WRITABLE))
def test_wrong_type_writes_are_ignored(state: GxState, path: str, payload: str | bytes) -> None:
    keepalive(state, SUPPRESS)
    before = state.value(path)
    assert write(state, path, payload) == []
    assert state.value(path) == before


def test_mode_write_needs_mode_is_adjustable(state: GxState) -> None:
    keepalive(state, SUPPRESS)
    state.update({"vebus/276/ModeIsAdjustable": 0})
    assert write(state, "vebus/276/Mode", '{"value": 4}') == []
    assert state.value("vebus/276/Mode") == 3
    state.update({"vebus/276/ModeIsAdjustable": 1})
    assert topics(write(state, "vebus/276/Mode", '{"value": 4}')) == [N + "vebus/276/Mode"]


def test_current_limit_write_needs_current_limit_is_adjustable(state: GxState) -> None:
    keepalive(state, SUPPRESS)
    path = "vebus/276/Ac/ActiveIn/CurrentLimit"
    state.update({"vebus/276/Ac/ActiveIn/CurrentLimitIsAdjustable": 0})
    assert write(state, path, '{"value": 10}') == []
    assert state.value(path) == 16.0
    state.update({"vebus/276/Ac/ActiveIn/CurrentLimitIsAdjustable": 1})
    assert topics(write(state, path, '{"value": 10}')) == [N + path]


@pytest.mark.parametrize(
    "path",
    [
        "vebus/276/State",
        "vebus/276/ModeIsAdjustable",
        "vebus/276/Ac/Out/L1/P",
        "system/0/Serial",
        "settings/0/Settings/SystemSetup/AcInput1",
        "vebus/276/NoSuchPath",
        "vebus/999/Mode",
    ],
)
def test_writes_to_read_only_or_unknown_paths_are_ignored(state: GxState, path: str) -> None:
    keepalive(state, SUPPRESS)
    before = state.items[path].value if path in state.items else None
    assert write(state, path, '{"value": 1}') == []
    if before is not None:
        assert state.value(path) == before


def test_write_while_not_alive_updates_silently(state: GxState) -> None:
    assert write(state, "vebus/276/Mode", '{"value": 1}') == []
    assert state.value("vebus/276/Mode") == 1
    out = state.handle(f"R/{PORTAL}/vebus/276/Mode", b"")
    assert out[0].payload == b'{"value":1}'


def test_unchanged_write_is_not_echoed(state: GxState) -> None:
    keepalive(state, SUPPRESS)
    assert write(state, "vebus/276/Mode", '{"value": 3}') == []


# --- devices disappearing ----------------------------------------------------------------


def test_disappearing_device_publishes_empty_payloads_even_when_not_alive(
    state: GxState,
) -> None:
    device_topics = {N + k for k in state.items if k.startswith("solarcharger/279/")}
    out = state.remove_device("solarcharger", 279)
    assert {m.topic for m in out} == device_topics
    assert all(m.payload == b"" and not m.retain for m in out)
    assert state.handle(f"R/{PORTAL}/solarcharger/279/Yield/Power", b"") == []
    full = keepalive(state)
    assert not any(t.startswith(N + "solarcharger/") for t in topics(full))
    back = state.restore_device("solarcharger", 279)
    assert {m.topic for m in back} == device_topics
    assert all(m.payload.startswith(b'{"value":') for m in back)
