"""RereadSchedule: a lost GX value is read back at once, then at a bounded, backing-off pace."""

from __future__ import annotations

import itertools

from ovr_events.reread import RereadSchedule


def reads(schedule: RereadSchedule, keys: set[str], seconds: float, tick: float = 0.5) -> list[tuple[float, str]]:
    out = []
    t = 0.0
    while t <= seconds:
        out += [(t, k) for k in schedule.due(keys, t)]
        t += tick
    return out


def test_read_at_once_then_backing_off_to_the_cap():
    got = reads(RereadSchedule(first_retry=2, max_interval=16), {"a"}, 100)
    times = [t for t, _ in got]
    assert times[:6] == [0, 2, 6, 14, 30, 46]  # waits 2, 4, 8, 16, then 16 again
    assert all(b - a <= 16 for a, b in itertools.pairwise(times))
    assert len(got) == 9  # 0, 2, 6, 14, 30, 46, 62, 78, 94


def test_a_value_arriving_resets_the_schedule():
    s = RereadSchedule(first_retry=2, max_interval=60)
    assert s.due({"a"}, 0) == ["a"]
    assert s.due({"a"}, 1) == []
    assert s.due(set(), 1.5) == [] and s.reading() == set()  # the value came back
    assert s.due({"a"}, 1.6) == ["a"]  # lost again: read at once


def test_a_whole_device_going_blank_is_read_in_bursts():
    keys = {f"k{i:02d}" for i in range(20)}
    s = RereadSchedule(first_retry=2, max_interval=60, burst=8)
    first = s.due(keys, 0)
    assert len(first) == 8
    second = s.due(keys, 0.5)
    third = s.due(keys, 1.0)
    assert len(second) == 8 and len(third) == 4
    assert set(first) | set(second) | set(third) == keys
    # Steady state: each key at most once a minute.
    got = reads(s, keys, 600)
    per_key = {k: sum(1 for _, x in got if x == k) for k in keys}
    assert max(per_key.values()) <= 600 / 60 + 6
