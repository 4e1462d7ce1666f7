import { alarmLabels, formatAge, formatPower, formatSoc, formatVoltage, modeName, socLevel } from '@ovr/shared';
import type { SystemLive } from '@ovr/shared';

/** One GX: its values with their age; a stale GX is greyed and says so, never a frozen number that looks live. */
export function SystemCard({ system: s }: { system: SystemLive }) {
  const lvl = socLevel(s.soc);
  const alarms = alarmLabels(s.alarms);
  return (
    <article className={`card system ${s.stale ? 'is-stale' : ''}`} aria-labelledby={`sys-${s.system_id}`} data-testid={`system-${s.system_id}`}>
      <header className="system-head">
        <h2 id={`sys-${s.system_id}`}>{s.system_id}</h2>
        {s.stale ? (
          <span className="chip chip-bad" data-testid="stale">
            Data stale · last seen {formatAge(s.age_s)}
          </span>
        ) : (
          <span className="chip chip-good">Live · {formatAge(s.age_s)}</span>
        )}
      </header>
      <dl className="values">
        <div className={`value-row level-${lvl.level}`}>
          <dt>SoC</dt>
          <dd data-testid="soc">
            {formatSoc(s.soc)} <span className="word">{lvl.word}</span>
          </dd>
        </div>
        <div className="value-row">
          <dt>Voltage</dt>
          <dd data-testid="voltage">{formatVoltage(s.voltage)}</dd>
        </div>
        <div className="value-row">
          <dt>Power in</dt>
          <dd data-testid="pin">{formatPower(s.pin)}</dd>
        </div>
        <div className="value-row">
          <dt>Power out</dt>
          <dd data-testid="pout">{formatPower(s.pout)}</dd>
        </div>
        <div className="value-row">
          <dt>Mode</dt>
          <dd data-testid="mode">{modeName(s.mode)}</dd>
        </div>
      </dl>
      <ul className="alarms" aria-label="Alarms">
        {alarms.length === 0 ? <li className="chip chip-quiet">No alarms</li> : alarms.map((a) => <li key={a} className="chip chip-bad">{a}</li>)}
      </ul>
    </article>
  );
}
