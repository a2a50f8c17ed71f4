import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { ConfigError, envName, flagName, loadConfig, SETTINGS } from '../src/config.js';
import { formatDuration } from '../src/duration.js';
import { PROXY_DIR } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'dcache-config-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function yamlFile(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

/** The ConfigError that `fn` throws (fails the test when it does not throw one). */
function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error('expected a ConfigError');
}

describe('security settings', () => {
  it('refuse a token that a bearer header cannot carry, naming the setting', () => {
    const e = configError(() => loadConfig({ env: { DC_ADMIN_TOKEN: 'two words' } }));
    expect(e.setting).toBe('DC_ADMIN_TOKEN');
    expect(e.message).not.toContain('two words');
    expect(configError(() => loadConfig({ env: { DC_CLUSTER_TOKEN: 'tab\there' } })).setting).toBe(
      'DC_CLUSTER_TOKEN',
    );
  });

  it('refuse a bad allow-list or trusted-proxy entry, naming the setting and the entry', () => {
    const a = configError(() => loadConfig({ env: { DC_CACHE_ALLOWED_ADDRESSES: '10.0.0.0/33' } }));
    expect(a.setting).toBe('DC_CACHE_ALLOWED_ADDRESSES');
    expect(a.message).toContain('10.0.0.0/33');
    const t = configError(() => loadConfig({ env: { DC_SERVER_TRUSTED_PROXIES: 'nginx.local' } }));
    expect(t.setting).toBe('DC_SERVER_TRUSTED_PROXIES');
    expect(
      loadConfig({ env: { DC_CACHE_ALLOWED_ADDRESSES: '10.0.0.0/8,*.redis.svc,::1' } }).cache
        .allowedAddresses,
    ).toEqual(['10.0.0.0/8', '*.redis.svc', '::1']);
  });

  it('refuse TLS files without cache.tls, unreadable ones, and a certificate without its key', () => {
    expect(
      configError(() => loadConfig({ env: { DC_CACHE_TLS_CA: '/etc/hostname' } })).setting,
    ).toBe('DC_CACHE_TLS_CA');
    expect(
      configError(() =>
        loadConfig({ env: { DC_CACHE_TLS: 'true', DC_CACHE_TLS_CA: '/nonexistent/ca.pem' } }),
      ).setting,
    ).toBe('DC_CACHE_TLS_CA');
    expect(
      configError(() =>
        loadConfig({ env: { DC_CACHE_TLS: 'true', DC_CACHE_TLS_CERT: '/etc/hostname' } }),
      ).setting,
    ).toBe('DC_CACHE_TLS_KEY');
  });
});

describe('defaults', () => {
  it('match the documented values, durations in milliseconds', () => {
    const c = loadConfig({ env: {} });
    expect(c.server).toEqual({
      host: '127.0.0.1',
      port: 8080,
      readTimeout: 30_000,
      writeTimeout: 30_000,
      idleTimeout: 120_000,
      shutdownTimeout: 10_000,
      shutdownDelay: 0,
      maxConnections: 10_000,
      trustedProxies: [],
      fastPath: true,
    });
    expect(c.cache.addresses).toEqual(['localhost:6379']);
    expect(c.cache.commandTimeout).toBe(1_000);
    expect(c.cache.connectTimeout).toBe(2_000);
    expect(c.cache.defaultTtl).toBe(0);
    expect(c.health).toMatchObject({ interval: 1_000, timeout: 500, retryInterval: 2_000 });
    expect(c.limits).toEqual({
      maxKeyBytes: 512,
      maxValueBytes: 1_048_576,
      maxBatchKeys: 1_000,
      maxBodyBytes: 16_777_216,
      maxBatchResponseBytes: 33_554_432,
      maxValueDepth: 64,
    });
    expect(c.rateLimit).toEqual({ max: 0, window: 1_000, authFailures: 10, authWindow: 60_000 });
    expect(c.admin).toEqual({ token: '', protectedMode: true });
    expect(c.cache).toMatchObject({
      username: '',
      allowedAddresses: [],
      tls: false,
      tlsCa: '',
      tlsCert: '',
      tlsKey: '',
      tlsServername: '',
    });
    expect(c.replication).toEqual({ factor: 1, warmupWindow: 60_000 });
    expect(c.logger).toEqual({ level: 'info', format: 'auto', outputPath: 'stdout' });
    expect(c.cache.addressesAuthoritative).toBe(false);
    expect(c.cluster).toMatchObject({ peersDns: '', peersDnsInterval: 5_000, peersDnsServers: [] });
  });

  it('every default is accepted when given back explicitly as env', () => {
    const env: Record<string, string> = {};
    for (const s of SETTINGS) {
      const d = s.def as unknown;
      env[envName(s.path)] = Array.isArray(d)
        ? d.join(',')
        : s.kind === 'duration'
          ? `${d}ms`
          : String(d);
    }
    const explicit = loadConfig({ env });
    const dflt = loadConfig({ env: {} });
    expect({ ...explicit, cluster: { ...explicit.cluster, nodeId: '' } }).toEqual({
      ...dflt,
      cluster: { ...dflt.cluster, nodeId: '' },
    });
  });

  it('names follow the seed: DC_SECTION_KEY, --section-key', () => {
    expect(envName('server.read_timeout')).toBe('DC_SERVER_READ_TIMEOUT');
    expect(flagName('server.read_timeout')).toBe('server-read-timeout');
    const names = SETTINGS.map((s) => envName(s.path));
    for (const seed of [
      'DC_SERVER_HOST',
      'DC_SERVER_PORT',
      'DC_SERVER_READ_TIMEOUT',
      'DC_SERVER_WRITE_TIMEOUT',
      'DC_SERVER_IDLE_TIMEOUT',
      'DC_CACHE_ADDRESSES',
      'DC_CACHE_PASSWORD',
      'DC_CACHE_DATABASE',
      'DC_CACHE_MAX_RETRIES',
      'DC_CACHE_POOL_SIZE',
      'DC_CACHE_MIN_IDLE_CONNS',
      'DC_LOGGER_LEVEL',
      'DC_LOGGER_FORMAT',
      'DC_LOGGER_OUTPUT_PATH',
    ]) {
      expect(names).toContain(seed);
    }
  });

  it("accepts the seed README's whole environment block", () => {
    const c = loadConfig({
      env: {
        DC_SERVER_HOST: '0.0.0.0',
        DC_SERVER_PORT: '8080',
        DC_SERVER_READ_TIMEOUT: '30s',
        DC_SERVER_WRITE_TIMEOUT: '30s',
        DC_SERVER_IDLE_TIMEOUT: '120s',
        DC_CACHE_ADDRESSES: 'localhost:6379',
        DC_CACHE_PASSWORD: '',
        DC_CACHE_DATABASE: '0',
        DC_CACHE_MAX_RETRIES: '3',
        DC_CACHE_POOL_SIZE: '20',
        DC_CACHE_MIN_IDLE_CONNS: '10',
        DC_LOGGER_LEVEL: 'info',
        DC_LOGGER_FORMAT: 'json',
        DC_LOGGER_OUTPUT_PATH: 'stdout',
      },
    });
    expect(c.server.idleTimeout).toBe(120_000);
    expect(c.cache.poolSize).toBe(20);
    expect(c.cache.minIdleConns).toBe(10);
    expect(c.cache.password).toBe('');
  });
});

describe('precedence: defaults < YAML < env < flags', () => {
  const file = yamlFile(
    'layers.yaml',
    'server:\n  port: 7001\n  read_timeout: 5s\ncache:\n  addresses: [a:1, b:2]\n  default_ttl: 10\nlogger:\n  level: warn\n',
  );

  it('YAML (--config or DC_CONFIG) over defaults; numbers in YAML durations are seconds', () => {
    for (const c of [
      loadConfig({ argv: ['--config', file], env: {} }),
      loadConfig({ env: { DC_CONFIG: file } }),
    ]) {
      expect(c.server.port).toBe(7001);
      expect(c.server.readTimeout).toBe(5_000);
      expect(c.server.writeTimeout).toBe(30_000);
      expect(c.cache.addresses).toEqual(['a:1', 'b:2']);
      expect(c.cache.defaultTtl).toBe(10_000);
      expect(c.logger.level).toBe('warn');
    }
  });

  it('env over YAML', () => {
    const c = loadConfig({
      env: { DC_CONFIG: file, DC_SERVER_PORT: '7002', DC_LOGGER_LEVEL: 'debug' },
    });
    expect(c.server.port).toBe(7002);
    expect(c.logger.level).toBe('debug');
    expect(c.server.readTimeout).toBe(5_000);
  });

  it('flags over env, in both --flag value and --flag=value forms', () => {
    const env = { DC_CONFIG: file, DC_SERVER_PORT: '7002', DC_LOGGER_LEVEL: 'debug' };
    const c = loadConfig({ argv: ['--server-port', '7003', '--logger-level=error'], env });
    expect(c.server.port).toBe(7003);
    expect(c.logger.level).toBe('error');
    expect(c.cache.addresses).toEqual(['a:1', 'b:2']);
    const viaObject = loadConfig({ env, flags: { 'server.port': 7004 } });
    expect(viaObject.server.port).toBe(7004);
  });

  it('--config beats DC_CONFIG', () => {
    const other = yamlFile('other.yaml', 'server:\n  port: 7100\n');
    const c = loadConfig({ argv: ['--config', other], env: { DC_CONFIG: file } });
    expect(c.server.port).toBe(7100);
  });

  it('an empty env value of a string setting counts (DC_CACHE_PASSWORD=), of others is unset', () => {
    const f = yamlFile('pw.yaml', 'cache:\n  password: from-yaml\n');
    expect(loadConfig({ env: { DC_CONFIG: f, DC_CACHE_PASSWORD: '' } }).cache.password).toBe('');
    expect(loadConfig({ env: { DC_SERVER_PORT: '' } }).server.port).toBe(8080);
  });

  it('parses lists, sizes and durations from strings', () => {
    const c = loadConfig({
      env: {
        DC_CACHE_ADDRESSES: ' 10.0.0.1:6379 , 10.0.0.2:6380,[::1]:6381 ',
        DC_LIMITS_MAX_VALUE_BYTES: '2mb',
        DC_LIMITS_MAX_BODY_BYTES: '512kb',
        DC_HEALTH_INTERVAL: '1m',
        DC_HEALTH_TIMEOUT: '1500ms',
        DC_CACHE_DEFAULT_TTL: '1h30m',
        DC_CLUSTER_PEERS: 'http://p1:8080,https://p2',
      },
    });
    expect(c.cache.addresses).toEqual(['10.0.0.1:6379', '10.0.0.2:6380', '[::1]:6381']);
    expect(c.limits.maxValueBytes).toBe(2 * 1_048_576);
    expect(c.limits.maxBodyBytes).toBe(512 * 1_024);
    expect(c.health.interval).toBe(60_000);
    expect(c.health.timeout).toBe(1_500);
    expect(c.cache.defaultTtl).toBe(5_400_000);
    expect(c.cluster.peers).toEqual(['http://p1:8080', 'https://p2']);
  });
});

describe('bad settings are refused naming the setting', () => {
  const cases: [string, Record<string, string>, string][] = [
    ['port not a number', { DC_SERVER_PORT: 'abc' }, 'DC_SERVER_PORT'],
    ['port out of range', { DC_SERVER_PORT: '70000' }, 'DC_SERVER_PORT'],
    ['port negative', { DC_SERVER_PORT: '-1' }, 'DC_SERVER_PORT'],
    ['address without port', { DC_CACHE_ADDRESSES: 'nohostport' }, 'DC_CACHE_ADDRESSES'],
    ['address port 0', { DC_CACHE_ADDRESSES: 'h:0' }, 'DC_CACHE_ADDRESSES'],
    ['address listed twice', { DC_CACHE_ADDRESSES: 'h:1,h:1' }, 'DC_CACHE_ADDRESSES'],
    ['bad duration', { DC_SERVER_READ_TIMEOUT: 'soon' }, 'DC_SERVER_READ_TIMEOUT'],
    ['zero read timeout', { DC_SERVER_READ_TIMEOUT: '0s' }, 'DC_SERVER_READ_TIMEOUT'],
    [
      'probe timeout over interval',
      { DC_HEALTH_TIMEOUT: '5s', DC_HEALTH_INTERVAL: '1s' },
      'DC_HEALTH_TIMEOUT',
    ],
    ['bad size', { DC_LIMITS_MAX_VALUE_BYTES: 'big' }, 'DC_LIMITS_MAX_VALUE_BYTES'],
    ['bad enum', { DC_LOGGER_FORMAT: 'xml' }, 'DC_LOGGER_FORMAT'],
    ['bad level', { DC_LOGGER_LEVEL: 'loud' }, 'DC_LOGGER_LEVEL'],
    ['bad hash', { DC_CACHE_HASH: 'crc32' }, 'DC_CACHE_HASH'],
    ['hash tag of 3', { DC_CACHE_HASH_TAG: '{}}' }, 'DC_CACHE_HASH_TAG'],
    ['hash tag not ASCII', { DC_CACHE_HASH_TAG: '«»' }, 'DC_CACHE_HASH_TAG'],
    ['database 16', { DC_CACHE_DATABASE: '16' }, 'DC_CACHE_DATABASE'],
    ['pool size 0', { DC_CACHE_POOL_SIZE: '0' }, 'DC_CACHE_POOL_SIZE'],
    ['replication 0', { DC_REPLICATION_FACTOR: '0' }, 'DC_REPLICATION_FACTOR'],
    ['peer not a URL', { DC_CLUSTER_PEERS: 'p1:8080' }, 'DC_CLUSTER_PEERS'],
    ['advertise not a URL', { DC_CLUSTER_ADVERTISE_URL: 'host' }, 'DC_CLUSTER_ADVERTISE_URL'],
    ['batch keys float', { DC_LIMITS_MAX_BATCH_KEYS: '1.5' }, 'DC_LIMITS_MAX_BATCH_KEYS'],
    ['missing config file', { DC_CONFIG: '/nonexistent/dcache.yaml' }, 'DC_CONFIG'],
  ];
  it.each(cases)('%s', (_what, env, name) => {
    const e = configError(() => loadConfig({ env }));
    expect(e.setting).toBe(name);
    expect(e.message).toContain(name);
    expect(e.message).not.toContain('\n');
  });

  it('names the flag when the bad value came from a flag, the YAML key when from YAML', () => {
    expect(configError(() => loadConfig({ argv: ['--server-port', 'x'], env: {} })).setting).toBe(
      '--server-port',
    );
    expect(
      configError(() => loadConfig({ argv: ['--cache-addresses', 'nohostport'], env: {} })).setting,
    ).toBe('--cache-addresses');
    const f = yamlFile('badport.yaml', 'server:\n  port: abc\n');
    expect(configError(() => loadConfig({ env: { DC_CONFIG: f } })).setting).toBe(
      `server.port in ${f}`,
    );
  });

  it('refuses unknown flags, stray arguments and flags without a value', () => {
    expect(configError(() => loadConfig({ argv: ['--nope', '1'], env: {} })).setting).toBe(
      '--nope',
    );
    expect(configError(() => loadConfig({ argv: ['serve'], env: {} })).setting).toBe('serve');
    expect(configError(() => loadConfig({ argv: ['--server-port'], env: {} })).setting).toBe(
      '--server-port',
    );
  });

  it('refuses bad YAML: syntax, not a mapping, unknown keys', () => {
    const bad = yamlFile('bad.yaml', 'server:\n  port: [1, 2\n');
    expect(configError(() => loadConfig({ env: { DC_CONFIG: bad } })).setting).toBe('DC_CONFIG');
    expect(configError(() => loadConfig({ argv: ['--config', bad], env: {} })).setting).toBe(
      '--config',
    );
    const list = yamlFile('list.yaml', '- a\n- b\n');
    expect(configError(() => loadConfig({ env: { DC_CONFIG: list } })).setting).toBe('DC_CONFIG');
    const unknown = yamlFile('unknown.yaml', 'server:\n  prot: 1\n');
    expect(configError(() => loadConfig({ env: { DC_CONFIG: unknown } })).setting).toBe(
      'server.prot',
    );
    const scalar = yamlFile('scalar.yaml', 'server: 8080\n');
    expect(configError(() => loadConfig({ env: { DC_CONFIG: scalar } })).setting).toBe('server');
  });

  it('never shows a secret in the error', () => {
    const e = configError(() =>
      loadConfig({ env: { DC_CACHE_PASSWORD: 'hunter2', DC_SERVER_PORT: 'x' } }),
    );
    expect(e.message).not.toContain('hunter2');
  });
});

describe('docs/configuration.md', () => {
  const md = readFileSync(join(PROXY_DIR, '../../docs/configuration.md'), 'utf8');

  it('has a row per setting with its YAML key, env name, flag and default', () => {
    for (const s of SETTINGS) {
      const row = md.split('\n').find((l) => l.split('|')[1]?.trim() === `\`${s.path}\``);
      expect(row, s.path).toBeDefined();
      expect(row).toContain(`\`${envName(s.path)}\``);
      expect(row).toContain(`\`--${flagName(s.path)}\``);
      const d = s.def as unknown;
      const shown =
        s.kind === 'duration'
          ? formatDuration(d as number)
          : Array.isArray(d)
            ? d.join(',')
            : String(d);
      if (shown !== '') expect(row).toContain(`\`${shown}\``);
    }
  });
});

describe('config.example.yaml', () => {
  const path = join(PROXY_DIR, 'config.example.yaml');
  const text = readFileSync(path, 'utf8');

  it('lists every setting under its section, with its env name and flag', () => {
    const doc = parseYaml(text) as Record<string, Record<string, unknown>>;
    for (const s of SETTINGS) {
      const [section, key] = s.path.split('.') as [string, string];
      expect(doc[section], s.path).toBeTypeOf('object');
      expect(Object.keys(doc[section] ?? {}), s.path).toContain(key);
      expect(text, s.path).toContain(envName(s.path));
      expect(text, s.path).toContain(`--${flagName(s.path)}`);
    }
    const known = new Set(SETTINGS.map((s) => s.path));
    for (const [section, keys] of Object.entries(doc))
      for (const key of Object.keys(keys))
        expect(known, `${section}.${key}`).toContain(`${section}.${key}`);
  });

  it('loads cleanly and gives the defaults', () => {
    const fromFile = loadConfig({ argv: ['--config', path], env: {} });
    const dflt = loadConfig({ env: {} });
    expect(fromFile).toEqual(dflt);
  });
});
