import { describe, expect, it } from 'vitest';
import { alarmName, alertsSummary, formatAge, formatPower, formatSoc, formatVoltage, gxSystems, modeName, socLevel } from '../src/realtime';
import type { Realtime } from '../src/realtime';

describe('socLevel', () => {
  it.each([
    [100, 'good', 'OK'],
    [40, 'good', 'OK'],
    [39.9, 'warn', 'low'],
    [25, 'warn', 'low'],
    [24.9, 'bad', 'critical'],
    [0, 'bad', 'critical'],
    [null, 'none', 'no reading'],
  ])('%s %% is %s (%s)', (soc, level, word) => {
    expect(socLevel(soc as number | null)).toEqual({ level, word });
  });
});

describe('formatPower', () => {
  it('is W below 1,000 and kW from 1,000', () => {
    expect(formatPower(0)).toBe('0 W');
    expect(formatPower(999.4)).toBe('999 W');
    expect(formatPower(1000)).toBe('1.0 kW');
    expect(formatPower(2345)).toBe('2.3 kW');
    expect(formatPower(-1500)).toBe('-1.5 kW');
  });
  it('shows a dash for no reading, never 0', () => {
    expect(formatPower(null)).toBe('–');
    expect(formatPower(undefined)).toBe('–');
    expect(formatPower(Number.NaN)).toBe('–');
  });
});

describe('other units', () => {
  it('formats voltage, SoC and age', () => {
    expect(formatVoltage(52.345)).toBe('52.3 V');
    expect(formatSoc(86.6)).toBe('87 %');
    expect(formatSoc(null)).toBe('–');
    expect(formatAge(0.5)).toBe('just now');
    expect(formatAge(12)).toBe('12 s ago');
    expect(formatAge(240)).toBe('4 min ago');
    expect(formatAge(7200)).toBe('2 h ago');
    expect(formatAge(null)).toBe('never');
  });
});

describe('modeName', () => {
  it('names the VE.Bus modes in words', () => {
    expect(modeName(1)).toBe('Charger only');
    expect(modeName(2)).toBe('Inverter only');
    expect(modeName(3)).toBe('On');
    expect(modeName(4)).toBe('Off');
    expect(modeName(7)).toBe('Mode 7');
    expect(modeName(null)).toBe('–');
  });
});

describe('alarms', () => {
  it('gives friendly names, with the phase', () => {
    expect(alarmName('LowBattery')).toBe('Low battery');
    expect(alarmName('L1/HighTemperature')).toBe('High temperature (L1)');
    expect(alarmName('SomethingNew')).toBe('Something new');
  });
  it('summarises: None, up to two names, else a count', () => {
    const a = (alarm: string, level = 2) => ({ service: 'vebus', instance: '276', alarm, level });
    expect(alertsSummary([])).toBe('None');
    expect(alertsSummary([a('LowBattery', 1)])).toBe('Low battery (warning)');
    expect(alertsSummary([a('LowBattery'), a('Overload')])).toBe('Low battery, Overload');
    expect(alertsSummary([a('LowBattery'), a('Overload'), a('Ripple')])).toBe('3 active');
  });
});

describe('gxSystems', () => {
  it('keeps GX systems only, sorted by id', () => {
    const sys = (system_id: string, type?: string) => ({
      system_id, type, soc: null, voltage: null, pin: null, pout: null, mode: null, alarms: [], ts: null, age_s: null, stale: true,
    });
    const rt: Realtime = { ts: 0, node_id: 'n', snapshot_ts: null, worker_ok: true, systems: [sys('b'), sys('m', 'acuvim'), sys('a', 'gx')] };
    expect(gxSystems(rt).map((s) => s.system_id)).toEqual(['a', 'b']);
  });
});
