"""When to ask a GX again for a value the API needs but no longer has (pure: no I/O).

A GX publishes a value only when it changes. If one notification on a slow path is blank
(an empty payload: Venus's "device gone") or invalid (`{"value": null}`), nothing on the GX
side will ever send that value again until it changes, which for a current limit or a mode can
be never. So the connection reads such a path back with `R/<portal>/<path>` (dbus-flashmq
answers a read whether the GX is alive or not):

- at once, on the next tick after the value became unknown;
- then again after 2, 4, 8 … seconds, at most every `max_interval` (60 s), for as long as it
  stays unknown: a path that really has gone (a device unplugged) costs one tiny read a minute;
- never more than `burst` reads in one tick, so a whole device going blank at once is read
  back over a few ticks rather than in one flood.

A value arriving forgets the path's schedule, so the next loss starts again at once.
"""

from __future__ import annotations

from collections.abc import Iterable

FIRST_RETRY_SECONDS = 2.0
MAX_INTERVAL_SECONDS = 60.0
BURST = 8


class RereadSchedule:
    def __init__(self, first_retry: float = FIRST_RETRY_SECONDS, max_interval: float = MAX_INTERVAL_SECONDS,
                 burst: int = BURST) -> None:
        self.first_retry = first_retry
        self.max_interval = max_interval
        self.burst = burst
        self._next: dict[str, float] = {}  # key -> monotonic time of the next read
        self._interval: dict[str, float] = {}  # key -> the wait after the next read

    def due(self, unknown: Iterable[str], now: float) -> list[str]:
        """The keys to read now, out of the keys unknown now; forgets keys no longer unknown."""
        unknown = set(unknown)
        for key in [k for k in self._next if k not in unknown]:
            del self._next[key]
            del self._interval[key]
        out: list[str] = []
        # Oldest due first, then by name, so a burst limit delays the same keys fairly.
        for key in sorted(unknown, key=lambda k: (self._next.get(k, -1.0), k)):
            if len(out) >= self.burst:
                break
            if self._next.get(key, -1.0) > now:
                continue
            wait = self._interval.get(key, self.first_retry)
            self._next[key] = now + wait
            self._interval[key] = min(wait * 2, self.max_interval)
            out.append(key)
        return out

    def reading(self) -> set[str]:
        """The keys being read back now (unknown and scheduled)."""
        return set(self._next)
