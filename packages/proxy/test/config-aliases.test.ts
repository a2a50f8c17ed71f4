import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';

describe('environment aliases', () => {
  it('DC_WARMUP_WINDOW (the issue’s name) sets replication.warmup_window', () => {
    expect(loadConfig({ env: { DC_WARMUP_WINDOW: '5s' } }).replication.warmupWindow).toBe(5_000);
  });
  it('the canonical name wins over the alias', () => {
    const c = loadConfig({ env: { DC_WARMUP_WINDOW: '5s', DC_REPLICATION_WARMUP_WINDOW: '7s' } });
    expect(c.replication.warmupWindow).toBe(7_000);
  });
  it('a bad alias value is refused under the alias name', () => {
    expect(() => loadConfig({ env: { DC_WARMUP_WINDOW: 'soon' } })).toThrow(ConfigError);
    expect(() => loadConfig({ env: { DC_WARMUP_WINDOW: 'soon' } })).toThrow(/DC_WARMUP_WINDOW/);
  });
});
