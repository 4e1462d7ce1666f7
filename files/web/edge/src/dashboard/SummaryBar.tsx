import { alertsSummary, formatPower, formatSoc, formatVoltage, modeName, socLevel } from '@ovr/shared';
import type { SystemLive } from '@ovr/shared';

/** The node at a glance: one system's values, or the totals when there are several. */
export function SummaryBar({ systems }: { systems: SystemLive[] }) {
  const one = systems.length === 1 ? systems[0] : null;
  const fresh = systems.filter((s) => !s.stale);
  const sum = (k: 'pin' | 'pout') => (fresh.some((s) => s[k] !== null) ? fresh.reduce((a, s) => a + (s[k] ?? 0), 0) : null);
  const socs = fresh.map((s) => s.soc).filter((v): v is number => v !== null);
  const soc = one ? (one.stale ? null : one.soc) : socs.length ? Math.min(...socs) : null;
  const lvl = socLevel(soc);
  const alarms = systems.flatMap((s) => s.alarms);
  return (
    <section className="summary" aria-label="Summary" data-testid="summary">
      <div className={`metric level-${lvl.level}`}>
        <span className="label">{one ? 'SoC' : 'Lowest SoC'}</span>
        <span className="value">{formatSoc(soc)}</span>
        <span className="word">{lvl.word}</span>
      </div>
      {one && (
        <div className="metric">
          <span className="label">Voltage</span>
          <span className="value">{formatVoltage(one.stale ? null : one.voltage)}</span>
        </div>
      )}
      <div className="metric">
        <span className="label">Power in</span>
        <span className="value">{formatPower(sum('pin'))}</span>
      </div>
      <div className="metric">
        <span className="label">Power out</span>
        <span className="value">{formatPower(sum('pout'))}</span>
      </div>
      {one && (
        <div className="metric">
          <span className="label">Mode</span>
          <span className="value">{modeName(one.stale ? null : one.mode)}</span>
        </div>
      )}
      <div className={`metric ${alarms.length ? 'level-bad' : ''}`}>
        <span className="label">Alerts</span>
        <span className="value value-text" title={alarms.map((a) => a.alarm).join(', ')}>
          {alertsSummary(alarms)}
        </span>
      </div>
    </section>
  );
}
