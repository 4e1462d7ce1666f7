// The app shell: who is logged in, then the screens. Features live in their own folders
// (dashboard/ today; events/, control/, history/, map/ next), all on the one data layer (@ovr/shared).
import { useCallback, useEffect, useMemo, useState } from 'react';
import { ApiError, createClient, logout, whoAmI } from '@ovr/shared';
import type { Me } from '@ovr/shared';
import { Dashboard } from './dashboard/Dashboard';
import { Login } from './login/Login';

type Session = { state: 'checking' } | { state: 'anonymous' } | { state: 'in'; me: Me } | { state: 'error'; error: string };

export function App() {
  const api = useMemo(() => createClient(), []);
  const [session, setSession] = useState<Session>({ state: 'checking' });

  const check = useCallback(() => {
    setSession({ state: 'checking' });
    whoAmI(api)
      .then((me) => setSession(me ? { state: 'in', me } : { state: 'anonymous' }))
      .catch((e: unknown) => setSession({ state: 'error', error: e instanceof ApiError ? e.message : String(e) }));
  }, [api]);
  useEffect(check, [check]);

  return (
    <div className="app">
      <header className="topbar">
        <span className="brand">ovr-tele</span>
        {session.state === 'in' && (
          <span className="who">
            <span>
              {session.me.user} · {session.me.role}
            </span>
            <button
              type="button"
              className="btn btn-quiet"
              onClick={() => {
                void logout(api).finally(() => setSession({ state: 'anonymous' }));
              }}
            >
              Log out
            </button>
          </span>
        )}
      </header>
      <main>
        {session.state === 'checking' && <p className="state" role="status">Connecting to this node…</p>}
        {session.state === 'error' && (
          <div className="state state-error" role="alert">
            <p>{session.error}</p>
            <button type="button" className="btn" onClick={check}>
              Try again
            </button>
          </div>
        )}
        {session.state === 'anonymous' && <Login api={api} onLoggedIn={(me) => setSession({ state: 'in', me })} />}
        {session.state === 'in' && <Dashboard api={api} onSignedOut={() => setSession({ state: 'anonymous' })} />}
      </main>
    </div>
  );
}
