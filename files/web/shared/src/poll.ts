// One live-update channel: a poll of /api/realtime today (server-sent events later, same shape).
// State is what a screen needs to be honest: loading, live data, the last data with an error
// (offline), or an error with no data yet.
import type { ApiClient } from './api';
import { ApiError } from './api';
import type { Realtime } from './realtime';

export type LiveState =
  | { status: 'loading' }
  | { status: 'live'; data: Realtime; at: number }
  | { status: 'offline'; data: Realtime | null; at: number | null; error: ApiError };

export interface Poller {
  stop(): void;
}

export function pollRealtime(
  api: ApiClient,
  onState: (s: LiveState) => void,
  opts: { intervalMs?: number; now?: () => number; setTimer?: (fn: () => void, ms: number) => unknown; clearTimer?: (t: unknown) => void } = {},
): Poller {
  const interval = opts.intervalMs ?? 1000;
  const now = opts.now ?? Date.now;
  const setTimer = opts.setTimer ?? ((fn, ms) => setTimeout(fn, ms));
  const clearTimer = opts.clearTimer ?? ((t) => clearTimeout(t as ReturnType<typeof setTimeout>));
  let last: { data: Realtime; at: number } | null = null;
  let stopped = false;
  let timer: unknown = null;
  let ctrl: AbortController | null = null;

  async function tick() {
    ctrl = new AbortController();
    try {
      const data = await api.get<Realtime>('/api/realtime', ctrl.signal);
      if (stopped) return;
      last = { data, at: now() };
      onState({ status: 'live', ...last });
    } catch (e) {
      if (stopped) return;
      const error = e instanceof ApiError ? e : new ApiError('offline', 0, 'the node cannot be reached');
      onState({ status: 'offline', data: last?.data ?? null, at: last?.at ?? null, error });
      if (error.kind === 'auth') return; // the login screen takes over
    }
    if (!stopped) timer = setTimer(tick, interval);
  }

  onState({ status: 'loading' });
  void tick();
  return {
    stop() {
      stopped = true;
      ctrl?.abort();
      if (timer !== null) clearTimer(timer);
    },
  };
}
