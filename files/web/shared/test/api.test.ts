import { describe, expect, it } from 'vitest';
import { ApiError, createClient } from '../src/api';
import { login, whoAmI } from '../src/auth';
import { pollRealtime } from '../src/poll';
import type { LiveState } from '../src/poll';

const json = (status: number, doc: unknown) => new Response(JSON.stringify(doc), { status, headers: { 'Content-Type': 'application/json' } });

describe('createClient', () => {
  it('sends JSON with the session cookie and returns the answer', async () => {
    const seen: { url: string; init?: RequestInit }[] = [];
    const api = createClient('', async (url, init) => {
      seen.push({ url, init });
      return json(200, { ok: 1 });
    });
    expect(await api.post('/api/x', { a: 1 })).toEqual({ ok: 1 });
    expect(seen[0].url).toBe('/api/x');
    expect(seen[0].init?.credentials).toBe('same-origin');
    expect(seen[0].init?.body).toBe('{"a":1}');
    expect((seen[0].init?.headers as Record<string, string>)['Content-Type']).toBe('application/json');
  });

  it('turns the service error into a message that says what failed', async () => {
    const api = createClient('', async () => json(400, { error: 'systems must be a list' }));
    await expect(api.get('/api/events')).rejects.toMatchObject({
      kind: 'bad-request', status: 400, message: 'GET /api/events failed (400): systems must be a list',
    });
  });

  it('says the node cannot be reached when the network fails', async () => {
    const api = createClient('', async () => {
      throw new TypeError('Failed to fetch');
    });
    const err = await api.get('/api/realtime').catch((e) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err.kind).toBe('offline');
    expect(err.message).toMatch(/cannot be reached/);
  });

  it('names the events service when the proxy answers 502', async () => {
    const api = createClient('', async () => new Response('bad gateway', { status: 502 }));
    await expect(api.get('/api/realtime')).rejects.toMatchObject({ kind: 'server', message: expect.stringMatching(/events service/) });
  });

  it('refuses an answer that is not JSON', async () => {
    const api = createClient('', async () => new Response('<html>', { status: 200 }));
    await expect(api.get('/api/realtime')).rejects.toMatchObject({ kind: 'bad-response' });
  });
});

describe('auth', () => {
  it('whoAmI is null when not logged in', async () => {
    const api = createClient('', async () => json(401, { error: 'not logged in' }));
    expect(await whoAmI(api)).toBeNull();
  });
  it('login says wrong credentials in words, and refuses empty fields without a request', async () => {
    let calls = 0;
    const api = createClient('', async () => {
      calls += 1;
      return json(401, { error: 'wrong username or password' });
    });
    await expect(login(api, 'tech', 'nope')).rejects.toThrow('Wrong user name or password.');
    await expect(login(api, ' ', 'x')).rejects.toThrow('Enter your user name and password.');
    expect(calls).toBe(1);
  });
  it('login passes the throttle wait on', async () => {
    const api = createClient('', async () => json(429, { error: 'too many failed logins from address 1.2.3.4: try again in 8 s' }));
    await expect(login(api, 'tech', 'x')).rejects.toThrow(/^too many failed logins .* 8 s$/);
  });
});

describe('pollRealtime', () => {
  it('goes loading -> live, keeps the last data when the node drops, and stops', async () => {
    const answers: (() => Response)[] = [
      () => json(200, { ts: 1, node_id: 'n', snapshot_ts: 1, worker_ok: true, systems: [] }),
      () => {
        throw new TypeError('offline');
      },
    ];
    const timers: (() => void)[] = [];
    const states: LiveState[] = [];
    const api = createClient('', async () => (answers.shift() ?? (() => json(200, {})))());
    const p = pollRealtime(api, (s) => states.push(s), { now: () => 42, setTimer: (fn) => timers.push(fn), clearTimer: () => {} });
    await new Promise((r) => setTimeout(r, 0));
    expect(states.map((s) => s.status)).toEqual(['loading', 'live']);
    timers.shift()?.();
    await new Promise((r) => setTimeout(r, 0));
    const last = states[states.length - 1];
    expect(last.status).toBe('offline');
    if (last.status === 'offline') {
      expect(last.data?.node_id).toBe('n');
      expect(last.at).toBe(42);
      expect(last.error.kind).toBe('offline');
    }
    p.stop();
    expect(timers.length).toBe(1);
  });

  it('stops polling on a 401 (the login screen takes over)', async () => {
    const timers: (() => void)[] = [];
    const states: LiveState[] = [];
    const api = createClient('', async () => json(401, { error: 'authentication required' }));
    pollRealtime(api, (s) => states.push(s), { setTimer: (fn) => timers.push(fn) });
    await new Promise((r) => setTimeout(r, 0));
    expect(states[1]).toMatchObject({ status: 'offline', error: { kind: 'auth' } });
    expect(timers.length).toBe(0);
  });
});
