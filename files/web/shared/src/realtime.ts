// /api/realtime: the types, and how its values read for a person (UI.md: units, colours with words).

export interface Alarm {
  service: string;
  instance: string;
  alarm: string;
  level: number;
}

export interface SystemLive {
  system_id: string;
  portal_id?: string;
  type?: string;
  connected?: boolean;
  soc: number | null;
  voltage: number | null;
  current?: number | null;
  pin: number | null;
  pout: number | null;
  mode: number | null;
  alarms: Alarm[];
  ts: number | null;
  age_s: number | null;
  stale: boolean;
}

export interface Realtime {
  ts: number;
  node_id: string;
  snapshot_ts: number | null;
  worker_ok: boolean;
  systems: SystemLive[];
}

export type Level = 'good' | 'warn' | 'bad' | 'none';

/** SoC colour with its word (status is never colour alone): ≥ 40 % good, ≥ 25 % low, below critical. */
export function socLevel(soc: number | null | undefined): { level: Level; word: string } {
  if (soc === null || soc === undefined || Number.isNaN(soc)) return { level: 'none', word: 'no reading' };
  if (soc >= 40) return { level: 'good', word: 'OK' };
  if (soc >= 25) return { level: 'warn', word: 'low' };
  return { level: 'bad', word: 'critical' };
}

const dash = '–';

/** W below 1,000, kW from 1,000 (one decimal). */
export function formatPower(watts: number | null | undefined): string {
  if (watts === null || watts === undefined || Number.isNaN(watts)) return dash;
  const abs = Math.abs(watts);
  if (abs >= 1000) return `${(watts / 1000).toFixed(abs >= 100_000 ? 0 : 1)} kW`;
  return `${Math.round(watts)} W`;
}

export function formatVoltage(volts: number | null | undefined): string {
  if (volts === null || volts === undefined || Number.isNaN(volts)) return dash;
  return `${volts.toFixed(1)} V`;
}

export function formatSoc(soc: number | null | undefined): string {
  if (soc === null || soc === undefined || Number.isNaN(soc)) return dash;
  return `${Math.round(soc)} %`;
}

/** Victron VE.Bus /Mode: 1 charger only, 2 inverter only, 3 on, 4 off. */
const MODES: Record<number, string> = { 1: 'Charger only', 2: 'Inverter only', 3: 'On', 4: 'Off' };

export function modeName(mode: number | null | undefined): string {
  if (mode === null || mode === undefined) return dash;
  return MODES[mode] ?? `Mode ${mode}`;
}

const ALARM_NAMES: Record<string, string> = {
  LowBattery: 'Low battery',
  HighBattery: 'High battery voltage',
  LowVoltage: 'Low battery voltage',
  HighVoltage: 'High battery voltage',
  LowSoc: 'Low state of charge',
  HighTemperature: 'High temperature',
  LowTemperature: 'Low temperature',
  Overload: 'Overload',
  Ripple: 'High DC ripple',
  TemperatureSensor: 'Temperature sensor fault',
  VoltageSensor: 'Voltage sensor fault',
  PhaseRotation: 'Wrong phase rotation',
  GridLost: 'Grid lost',
  MidVoltage: 'Battery midpoint deviation',
  HighChargeCurrent: 'High charge current',
  HighDischargeCurrent: 'High discharge current',
  CellImbalance: 'Cell imbalance',
  InternalFailure: 'Internal failure',
  BmsCable: 'BMS cable fault',
  HighStarterBatteryVoltage: 'High starter battery voltage',
  LowStarterBatteryVoltage: 'Low starter battery voltage',
};

/** A friendly name for an alarm path such as "L1/HighTemperature" or "LowBattery". */
export function alarmName(alarm: string): string {
  const parts = alarm.split('/');
  const last = parts[parts.length - 1];
  const phase = parts.length > 1 && /^L[123]$/.test(parts[0]) ? ` (${parts[0]})` : '';
  const name = ALARM_NAMES[last] ?? (last.replace(/([a-z0-9])([A-Z])/g, '$1 $2').replace(/_/g, ' ').toLowerCase().replace(/^./, (c) => c.toUpperCase()) || alarm);
  return name + phase;
}

/** Alarm level 1 is a warning, 2 an alarm (Venus OS). */
export function alarmLabels(alarms: Alarm[]): string[] {
  return alarms.map((a) => `${alarmName(a.alarm)}${a.level >= 2 ? '' : ' (warning)'}`);
}

export function alertsSummary(alarms: Alarm[]): string {
  if (alarms.length === 0) return 'None';
  const labels = alarmLabels(alarms);
  return labels.length <= 2 ? labels.join(', ') : `${labels.length} active`;
}

/** "just now", "12 s ago", "4 min ago", "2 h ago". */
export function formatAge(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return 'never';
  if (seconds < 2) return 'just now';
  if (seconds < 60) return `${Math.round(seconds)} s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} d ago`;
}

/** The GX systems only (power meters come later), sorted by id for a stable layout. */
export function gxSystems(rt: Realtime): SystemLive[] {
  return rt.systems.filter((s) => (s.type ?? 'gx') === 'gx').sort((a, b) => a.system_id.localeCompare(b.system_id));
}
