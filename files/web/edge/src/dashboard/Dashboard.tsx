// The glance screen: a summary bar for the node and a card per GX (UI.md: live / stale / offline,
// empty, errors). Values come from the one live channel (pollRealtime, SSE later).
import { useEffect, useState } from 'react';
import { alertsSummary, formatAge, gxSystems, pollRealtime } from '@ovr/shared';
import type { ApiClient, LiveState, SystemLive } from '@ovr/shared';
import { SummaryBar } from './SummaryBar';
import { SystemCard } from './SystemCard';

export function Dashboard({ api, onSignedOut }: { api: ApiClient; onSignedOut: () => void }) {
  const [live, setLive] = useState<LiveState>({ status: 'loading' });
  const [online, setOnline] = useState(typeof navigator === 'undefined' ? true : navigator.onLine);

  useEffect(() => {
    const p = pollRealtime(api, (s) => {
      setLive(s);
      if (s.status === 'offline' && s.error.kind === 'auth') onSignedOut();
    });
    return () => p.stop();
  }, [api, onSignedOut]);

  useEffect(() => {
    const up = () => setOnline(true);
    const down = () => setOnline(false);
    window.addEventListener('online', up);
    window.addEventListener('offline', down);
    return () => {
      window.removeEventListener('online', up);
      window.removeEventListener('offline', down);
    };
  }, []);

  if (live.status === 'loading') {
    return (
      <p className="state" role="status">
        Loading live values…
      </p>
    );
  }
  const data = live.data;
  const systems: SystemLive[] = data ? gxSystems(data) : [];

  return (
    <>
      {!online && (
        <div className="banner banner-bad" role="alert">
          This phone is offline: no network to the node. The values below are the last ones received.
        </div>
      )}
      {live.status === 'offline' && online && (
        <div className="banner banner-bad" role="alert">
          {live.error.message}. {live.at ? `Last update ${formatAge((Date.now() - live.at) / 1000)}.` : 'No values received yet.'} Retrying…
        </div>
      )}
      {data && !data.worker_ok && (
        <div className="banner banner-warn" role="status">
          The node&apos;s live reader is not running: values may be old.
        </div>
      )}
      {data && systems.length === 0 && (
        <div className="card state" role="status">
          <h2>No GX systems yet</h2>
          <p>This node has not heard from any GX device. Check the GX is powered and on the same LAN, and that it is listed in this node&apos;s inventory.</p>
        </div>
      )}
      {systems.length > 0 && <SummaryBar systems={systems} />}
      <section className="cards" aria-label="GX systems">
        {systems.map((s) => (
          <SystemCard key={s.system_id} system={s} />
        ))}
      </section>
      {systems.length > 1 && <p className="fineprint">Alerts across systems: {alertsSummary(systems.flatMap((s) => s.alarms))}</p>}
    </>
  );
}
