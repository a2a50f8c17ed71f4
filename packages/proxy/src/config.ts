import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { parse as parseYaml } from 'yaml';
import { formatDuration, parseDuration } from './duration.js';
import { parseDnsServers, parsePeersDns } from './peers/dns-discovery.js';
import { AddressListError, parseAddressList } from './security/address-match.js';

type Kind = 'string' | 'int' | 'bool' | 'duration' | 'bytes' | 'list' | 'enum';

interface Setting {
  /** Dotted YAML path, e.g. `server.port`; env is `DC_SERVER_PORT`, flag `--server-port`. */
  readonly path: string;
  readonly kind: Kind;
  /** The default, already typed: milliseconds for durations, bytes for sizes. */
  readonly def: unknown;
  readonly doc: string;
  readonly min?: number;
  readonly max?: number;
  readonly values?: readonly string[];
  /** Never printed (tokens, passwords). */
  readonly secret?: boolean;
  /** Other environment names accepted for this setting (the canonical one wins). */
  readonly envAliases?: readonly string[];
}

/** Every setting of the proxy, in one list: the source of env names, flags, YAML keys, docs. */
export const SETTINGS = [
  {
    path: 'server.host',
    kind: 'string',
    def: '127.0.0.1',
    doc: 'Address the HTTP server binds (0.0.0.0 to listen on every interface)',
  },
  {
    path: 'server.port',
    kind: 'int',
    def: 8080,
    min: 0,
    max: 65535,
    doc: 'HTTP port (0 = any free port)',
  },
  {
    path: 'server.read_timeout',
    kind: 'duration',
    def: 30_000,
    min: 1,
    doc: 'Time allowed to receive a whole request (headers and body)',
  },
  {
    path: 'server.write_timeout',
    kind: 'duration',
    def: 30_000,
    min: 1,
    doc: 'Socket inactivity limit while a request is being served',
  },
  {
    path: 'server.idle_timeout',
    kind: 'duration',
    def: 120_000,
    min: 1,
    doc: 'Keep-alive idle timeout between requests',
  },
  {
    path: 'server.shutdown_timeout',
    kind: 'duration',
    def: 10_000,
    min: 0,
    doc: 'Drain limit for in-flight requests on SIGTERM/SIGINT',
  },
  {
    path: 'server.shutdown_delay',
    kind: 'duration',
    def: 0,
    min: 0,
    envAliases: ['DC_SHUTDOWN_DELAY'],
    doc: 'On SIGTERM/SIGINT, keep serving this long with /health/ready at 503 (load balancers stop sending) before the drain',
  },
  {
    path: 'server.max_connections',
    kind: 'int',
    def: 10_000,
    min: 0,
    doc: 'Most open client connections; more are closed at once (0 = no cap)',
  },
  {
    path: 'server.trusted_proxies',
    kind: 'list',
    def: [],
    doc: 'Addresses or CIDRs of reverse proxies (e.g. nginx) whose X-Forwarded-For names the client',
  },
  {
    path: 'server.fast_path',
    kind: 'bool',
    def: true,
    doc: 'Serve plain single-key GET/HEAD/PUT/DELETE on node:http ahead of Fastify (same answers, less CPU)',
  },
  {
    path: 'resp.port',
    kind: 'int',
    def: 0,
    min: 0,
    max: 65535,
    doc: 'Port of the RESP (Redis protocol) front end, e.g. 6380; 0 = off',
  },
  {
    path: 'resp.host',
    kind: 'string',
    def: '',
    doc: 'Address the RESP front end binds (empty = the same as server.host)',
  },
  {
    path: 'resp.password',
    kind: 'string',
    def: '',
    secret: true,
    doc: 'Password RESP clients give with AUTH before any other command (empty = none asked)',
  },
  {
    path: 'resp.username',
    kind: 'string',
    def: 'default',
    doc: 'User name accepted by AUTH <user> <password> (ACL-style clients)',
  },
  {
    path: 'resp.max_clients',
    kind: 'int',
    def: 10_000,
    min: 1,
    doc: 'RESP client connections served at once; more are answered -ERR max number of clients reached and closed',
  },
  {
    path: 'resp.max_inflight',
    kind: 'int',
    def: 1_024,
    min: 1,
    doc: "Commands of one RESP client being served at once; past it the proxy stops reading that client's socket until replies go out",
  },
  {
    path: 'cache.addresses',
    kind: 'list',
    def: ['localhost:6379'],
    doc: 'Redis nodes (host:port, comma list) that seed the ring when there is no state file and no peer',
  },
  {
    path: 'cache.addresses_authoritative',
    kind: 'bool',
    def: false,
    doc: 'At start, make the ring exactly cache.addresses (nodes added, removed or set active as an admin change that peers receive); undoes admin ring changes at each restart',
  },
  { path: 'cache.password', kind: 'string', def: '', secret: true, doc: 'Redis AUTH password' },
  {
    path: 'cache.username',
    kind: 'string',
    def: '',
    doc: 'Redis ACL user name (empty = the default user)',
  },
  {
    path: 'cache.allowed_addresses',
    kind: 'list',
    def: [],
    doc: 'CIDRs and host patterns (10.0.0.0/8, *.redis.svc) that may become nodes; the password goes only there (empty = any)',
  },
  { path: 'cache.tls', kind: 'bool', def: false, doc: 'Connect to Redis nodes over TLS' },
  {
    path: 'cache.tls_ca',
    kind: 'string',
    def: '',
    doc: "PEM file of the CA that signs the nodes' certificates (empty = system CAs)",
  },
  {
    path: 'cache.tls_cert',
    kind: 'string',
    def: '',
    doc: 'PEM client certificate for Redis TLS (with cache.tls_key)',
  },
  { path: 'cache.tls_key', kind: 'string', def: '', doc: 'PEM private key of cache.tls_cert' },
  {
    path: 'cache.tls_servername',
    kind: 'string',
    def: '',
    doc: "Name checked against every node's certificate (empty = the node's host)",
  },
  { path: 'cache.database', kind: 'int', def: 0, min: 0, max: 15, doc: 'Redis database index' },
  {
    path: 'cache.max_retries',
    kind: 'int',
    def: 3,
    min: 0,
    max: 20,
    doc: "Accepted for the Go system's configs and ignored: a command on a connection that is not ready fails at once (NODE_UNAVAILABLE), never waits or retries",
  },
  {
    path: 'cache.pool_size',
    kind: 'int',
    def: 2,
    min: 1,
    max: 64,
    doc: 'Connections per Redis node (pipelined: the commands of one event-loop turn leave in one write; round-robin per turn)',
  },
  {
    path: 'cache.max_pending',
    kind: 'int',
    def: 10_000,
    min: 1,
    max: 1_000_000,
    doc: 'Commands waiting for replies on one connection beyond which new ones fail at once (NODE_UNAVAILABLE): a node that stops answering collects no endless queue',
  },
  {
    path: 'cache.min_idle_conns',
    kind: 'int',
    def: 0,
    min: 0,
    max: 64,
    doc: 'Accepted for compatibility with the Go server; every pool connection stays open',
  },
  {
    path: 'cache.connect_timeout',
    kind: 'duration',
    def: 2_000,
    min: 1,
    doc: 'Redis connect timeout',
  },
  {
    path: 'cache.command_timeout',
    kind: 'duration',
    def: 1_000,
    min: 1,
    doc: 'Redis command timeout: no request waits on a node longer',
  },
  {
    path: 'cache.default_ttl',
    kind: 'duration',
    def: 0,
    min: 0,
    doc: 'TTL when a write gives none (0 = no expiry)',
  },
  {
    path: 'cache.hash',
    kind: 'enum',
    def: 'murmur',
    values: ['murmur', 'fnv1a_64', 'md5'],
    doc: 'Key hash of the ring (twemproxy names)',
  },
  {
    path: 'cache.hash_tag',
    kind: 'string',
    def: '',
    doc: 'Two characters such as "{}": only the part between them is hashed',
  },
  {
    path: 'limits.max_key_bytes',
    kind: 'int',
    def: 512,
    min: 1,
    max: 65_536,
    doc: 'Longest key in UTF-8 bytes',
  },
  {
    path: 'limits.max_value_bytes',
    kind: 'bytes',
    def: 1_048_576,
    min: 1,
    doc: 'Largest value, serialized',
  },
  {
    path: 'limits.max_batch_keys',
    kind: 'int',
    def: 1_000,
    min: 1,
    max: 100_000,
    doc: 'Most keys in one batch call',
  },
  {
    path: 'limits.max_body_bytes',
    kind: 'bytes',
    def: 16_777_216,
    min: 1_024,
    doc: 'Largest request body (batch calls)',
  },
  {
    path: 'limits.max_batch_response_bytes',
    kind: 'bytes',
    def: 33_554_432,
    min: 1_024,
    doc: 'Most value bytes one batch get answers; keys past it fail with RESPONSE_TOO_LARGE',
  },
  {
    path: 'limits.max_value_depth',
    kind: 'int',
    def: 64,
    min: 1,
    max: 1_000,
    doc: 'Deepest nesting of arrays and objects in a value',
  },
  {
    path: 'rate_limit.max',
    kind: 'int',
    def: 0,
    min: 0,
    doc: 'Requests per window and client IP (0 = no rate limit)',
  },
  { path: 'rate_limit.window', kind: 'duration', def: 1_000, min: 1, doc: 'Rate-limit window' },
  {
    path: 'rate_limit.auth_failures',
    kind: 'int',
    def: 10,
    min: 0,
    doc: 'Failed authentications per client and auth window before 429 (0 = no throttle)',
  },
  {
    path: 'rate_limit.auth_window',
    kind: 'duration',
    def: 60_000,
    min: 1,
    doc: 'Window of rate_limit.auth_failures',
  },
  {
    path: 'health.interval',
    kind: 'duration',
    def: 1_000,
    min: 10,
    doc: 'PING interval for healthy nodes',
  },
  { path: 'health.timeout', kind: 'duration', def: 500, min: 1, doc: 'PING timeout' },
  {
    path: 'health.failure_threshold',
    kind: 'int',
    def: 3,
    min: 1,
    max: 1_000,
    doc: 'Consecutive failures (probe or live request) that eject a node',
  },
  {
    path: 'health.success_threshold',
    kind: 'int',
    def: 2,
    min: 1,
    max: 1_000,
    doc: 'Consecutive successful probes that put an ejected node back',
  },
  {
    path: 'health.retry_interval',
    kind: 'duration',
    def: 2_000,
    min: 10,
    doc: 'Probe interval for ejected nodes',
  },
  {
    path: 'health.journal_size',
    kind: 'int',
    def: 10_000,
    min: 0,
    doc: 'Keys remembered per ejected node to purge before it rejoins (overflow: FLUSHDB)',
  },
  {
    path: 'replication.factor',
    kind: 'int',
    def: 1,
    min: 1,
    max: 8,
    doc: 'Copies of every key on distinct nodes',
  },
  {
    path: 'replication.warmup_window',
    kind: 'duration',
    def: 60_000,
    min: 0,
    envAliases: ['DC_WARMUP_WINDOW'],
    doc: 'After a ring change, misses read the previous owner for this long',
  },
  {
    path: 'cluster.peers',
    kind: 'list',
    def: [],
    doc: 'Peer proxy base URLs (seeds), e.g. http://10.0.0.2:8080',
  },
  {
    path: 'cluster.peers_dns',
    kind: 'string',
    def: '',
    doc: "name:port whose A/AAAA records are the peer proxies (e.g. a headless Service), resolved on an interval; this proxy's own addresses are left out (empty = off)",
  },
  {
    path: 'cluster.peers_dns_interval',
    kind: 'duration',
    def: 5_000,
    min: 100,
    doc: 'How often cluster.peers_dns is resolved',
  },
  {
    path: 'cluster.peers_dns_servers',
    kind: 'list',
    def: [],
    doc: 'DNS servers (ip or ip:port) asked for cluster.peers_dns (empty = the system resolver configuration)',
  },
  {
    path: 'cluster.token',
    kind: 'string',
    def: '',
    secret: true,
    doc: 'Bearer token for /internal/v1 peer calls; empty disables peer sync',
  },
  {
    path: 'cluster.sync_interval',
    kind: 'duration',
    def: 1_000,
    min: 10,
    doc: 'Anti-entropy interval (with jitter)',
  },
  {
    path: 'cluster.lease',
    kind: 'duration',
    def: 0,
    doc: 'How long peers wait for a silent peer before a routing change goes on without it; a proxy stalled for half of it re-syncs before serving (0 = 2 × peer timeout + 4 × sync interval)',
  },
  {
    path: 'cluster.state_file',
    kind: 'string',
    def: '',
    doc: 'Where the membership document is kept across restarts (empty = not kept)',
  },
  {
    path: 'cluster.node_id',
    kind: 'string',
    def: '',
    doc: "This proxy's name in membership changes (default host:port)",
  },
  {
    path: 'cluster.advertise_url',
    kind: 'string',
    def: '',
    doc: 'URL peers use to reach this proxy (default http://<hostname>:<port>)',
  },
  {
    path: 'admin.token',
    kind: 'string',
    def: '',
    secret: true,
    doc: 'Bearer token for flush and ring changes (empty = protected mode: loopback clients only)',
  },
  {
    path: 'admin.protected_mode',
    kind: 'bool',
    def: true,
    doc: 'With no admin token, admin routes answer loopback clients only (false = open to all)',
  },
  {
    path: 'logger.level',
    kind: 'enum',
    def: 'info',
    values: ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'],
    doc: 'Log level',
  },
  {
    path: 'logger.format',
    kind: 'enum',
    def: 'auto',
    values: ['auto', 'json', 'pretty'],
    doc: 'Log format: auto is pretty when the log goes to a terminal, else JSON',
  },
  {
    path: 'logger.output_path',
    kind: 'string',
    def: 'stdout',
    doc: 'stdout, stderr or a file path',
  },
] as const satisfies readonly Setting[];

/** The validated configuration. */
export interface Config {
  server: {
    host: string;
    port: number;
    readTimeout: number;
    writeTimeout: number;
    idleTimeout: number;
    shutdownTimeout: number;
    shutdownDelay: number;
    maxConnections: number;
    trustedProxies: string[];
    fastPath: boolean;
  };
  resp: {
    port: number;
    host: string;
    password: string;
    username: string;
    maxClients: number;
    maxInflight: number;
  };
  cache: {
    addresses: string[];
    addressesAuthoritative: boolean;
    password: string;
    username: string;
    allowedAddresses: string[];
    tls: boolean;
    tlsCa: string;
    tlsCert: string;
    tlsKey: string;
    tlsServername: string;
    database: number;
    maxRetries: number;
    poolSize: number;
    maxPending: number;
    minIdleConns: number;
    connectTimeout: number;
    commandTimeout: number;
    defaultTtl: number;
    hash: 'murmur' | 'fnv1a_64' | 'md5';
    hashTag: string;
  };
  limits: {
    maxKeyBytes: number;
    maxValueBytes: number;
    maxBatchKeys: number;
    maxBodyBytes: number;
    maxBatchResponseBytes: number;
    maxValueDepth: number;
  };
  rateLimit: { max: number; window: number; authFailures: number; authWindow: number };
  health: {
    interval: number;
    timeout: number;
    failureThreshold: number;
    successThreshold: number;
    retryInterval: number;
    journalSize: number;
  };
  replication: { factor: number; warmupWindow: number };
  cluster: {
    peers: string[];
    peersDns: string;
    peersDnsInterval: number;
    peersDnsServers: string[];
    token: string;
    syncInterval: number;
    /** 0: derived from the sync interval. */
    lease: number;
    stateFile: string;
    nodeId: string;
    advertiseUrl: string;
  };
  admin: { token: string; protectedMode: boolean };
  logger: { level: string; format: 'auto' | 'json' | 'pretty'; outputPath: string };
}

/** A configuration error that names the setting; `main` prints it as one line and exits 2. */
export class ConfigError extends Error {
  readonly setting: string;
  constructor(setting: string, message: string) {
    super(`invalid configuration: ${setting}: ${message}`);
    this.name = 'ConfigError';
    this.setting = setting;
  }
}

/** `server.read_timeout` → `DC_SERVER_READ_TIMEOUT`. */
export function envName(path: string): string {
  return `DC_${path.replace('.', '_').toUpperCase()}`;
}

/** `server.read_timeout` → `server-read-timeout` (the CLI flag without dashes). */
export function flagName(path: string): string {
  return path.replace(/[._]/g, '-');
}

const camel = (s: string) => s.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());

/** Where the configuration comes from; later sources win: defaults < file < env < flags. */
export interface ConfigSources {
  /** Command-line flags (`--server-port 9000`, `--config file.yaml`). */
  argv?: readonly string[];
  env?: NodeJS.ProcessEnv;
  /** Already-parsed flags keyed by setting path (used by the `dcache serve` command). */
  flags?: Record<string, unknown>;
}

/** Load and validate the configuration once; throws ConfigError naming the bad setting. */
export function loadConfig({
  argv = [],
  env = process.env,
  flags = {},
}: ConfigSources = {}): Config {
  const fromArgv = parseArgv(argv);
  const file = (fromArgv.config as string | undefined) ?? env.DC_CONFIG;
  const yaml = file ? readYaml(file, fromArgv.config !== undefined ? '--config' : 'DC_CONFIG') : {};
  const out: Record<string, Record<string, unknown>> = {};
  // Where each value came from, so that cross-setting errors name what the user actually set.
  const names: Record<string, string> = {};
  for (const s of SETTINGS as readonly Setting[]) {
    const [section, key] = s.path.split('.') as [string, string];
    const flag = flagName(s.path);
    let raw: unknown = s.def;
    let source = 'default';
    const y = (yaml[section] as Record<string, unknown> | undefined)?.[key];
    if (y !== undefined && y !== null) {
      raw = y;
      source = `${s.path} in ${file}`;
    }
    const envKey =
      [envName(s.path), ...(s.envAliases ?? [])].find((n) => env[n] !== undefined) ??
      envName(s.path);
    const e = env[envKey];
    if (e !== undefined && e !== '') {
      raw = e;
      source = envKey;
    } else if (e === '' && s.kind === 'string') {
      raw = '';
      source = envKey;
    }
    if (flags[s.path] !== undefined) {
      raw = flags[s.path];
      source = `--${flag}`;
    }
    if (fromArgv[flag] !== undefined) {
      raw = fromArgv[flag];
      source = `--${flag}`;
    }
    names[s.path] = source === 'default' ? envName(s.path) : source;
    const section_ = camel(section);
    out[section_] ??= {};
    // Defaults are already typed (durations in ms): coercing them would read 30_000 as seconds.
    (out[section_] as Record<string, unknown>)[camel(key)] =
      source === 'default'
        ? Array.isArray(s.def)
          ? [...(s.def as readonly unknown[])]
          : s.def
        : coerce(s, raw, source);
  }
  const cfg = out as unknown as Config;
  crossCheck(cfg, (path) => names[path] ?? envName(path));
  return cfg;
}

function readYaml(file: string, name: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(name, `cannot read ${file}: ${(e as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new ConfigError(
      name,
      `${file} is not valid YAML: ${(e as Error).message.split('\n')[0]}`,
    );
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc))
    throw new ConfigError(name, `${file} must be a YAML mapping`);
  const known = new Set((SETTINGS as readonly Setting[]).map((s) => s.path));
  for (const [section, v] of Object.entries(doc)) {
    if (typeof v !== 'object' || v === null || Array.isArray(v))
      throw new ConfigError(section, `must be a mapping in ${file}`);
    for (const key of Object.keys(v)) {
      if (!known.has(`${section}.${key}`))
        throw new ConfigError(`${section}.${key}`, `unknown setting in ${file}`);
    }
  }
  return doc as Record<string, unknown>;
}

function parseArgv(argv: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  const known = new Set([
    'config',
    ...(SETTINGS as readonly Setting[]).map((s) => flagName(s.path)),
  ]);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (!a.startsWith('--'))
      throw new ConfigError(a, 'unexpected argument (flags look like --server-port 8080)');
    let name = a.slice(2);
    let value: string | undefined;
    const eq = name.indexOf('=');
    if (eq >= 0) {
      value = name.slice(eq + 1);
      name = name.slice(0, eq);
    } else {
      value = argv[i + 1];
      i++;
    }
    if (!known.has(name)) throw new ConfigError(`--${name}`, 'unknown flag');
    if (value === undefined) throw new ConfigError(`--${name}`, 'needs a value');
    out[name] = value;
  }
  return out;
}

function coerce(s: Setting, raw: unknown, name: string): unknown {
  const shown = s.secret ? '(hidden)' : JSON.stringify(raw);
  const fail = (why: string): never => {
    throw new ConfigError(name, `${why}, got ${shown}`);
  };
  const range = (n: number) => {
    if (s.min !== undefined && n < s.min) fail(`must be at least ${s.min}`);
    if (s.max !== undefined && n > s.max) fail(`must be at most ${s.max}`);
    return n;
  };
  switch (s.kind) {
    case 'string':
      if (typeof raw === 'number' || typeof raw === 'boolean') return String(raw);
      if (typeof raw !== 'string') return fail('must be a string');
      return raw;
    case 'int': {
      const n =
        typeof raw === 'number'
          ? raw
          : typeof raw === 'string' && /^-?\d+$/.test(raw.trim())
            ? Number(raw)
            : Number.NaN;
      if (!Number.isSafeInteger(n)) fail('must be an integer');
      return range(n);
    }
    case 'bool':
      if (raw === true || raw === 'true' || raw === '1') return true;
      if (raw === false || raw === 'false' || raw === '0') return false;
      return fail('must be true or false');
    case 'duration': {
      const ms = parseDuration(raw);
      if (ms === undefined) fail('must be a duration such as 500ms, 30s, 1m or 1h30m');
      return range(ms as number);
    }
    case 'bytes': {
      const n = parseBytes(raw);
      if (n === undefined) fail('must be a size such as 1048576, 512kb or 1mb');
      return range(n as number);
    }
    case 'list': {
      const list = Array.isArray(raw)
        ? raw.map(String)
        : typeof raw === 'string'
          ? raw.split(',')
          : fail('must be a comma list');
      return (list as string[]).map((x) => x.trim()).filter((x) => x !== '');
    }
    case 'enum':
      if (typeof raw !== 'string' || !s.values?.includes(raw))
        fail(`must be one of ${s.values?.join(', ')}`);
      return raw;
  }
}

function parseBytes(raw: unknown): number | undefined {
  if (typeof raw === 'number') return Number.isSafeInteger(raw) && raw >= 0 ? raw : undefined;
  if (typeof raw !== 'string') return undefined;
  const m = /^(\d+)\s*(b|kb|kib|mb|mib|gb|gib)?$/i.exec(raw.trim());
  if (!m) return undefined;
  const unit = (m[2] ?? 'b').toLowerCase();
  const mult = unit.startsWith('k')
    ? 1_024
    : unit.startsWith('m')
      ? 1_048_576
      : unit.startsWith('g')
        ? 1_073_741_824
        : 1;
  return Number(m[1]) * mult;
}

const ADDRESS_RE = /^(?:\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$/;

function crossCheck(cfg: Config, nameOf: (path: string) => string): void {
  if (cfg.resp.port !== 0 && cfg.resp.port === cfg.server.port)
    throw new ConfigError(nameOf('resp.port'), `${cfg.resp.port} is also server.port`);
  for (const a of cfg.cache.addresses) {
    const m = ADDRESS_RE.exec(a);
    const port = m ? Number(m[1]) : 0;
    if (!m || port < 1 || port > 65_535)
      throw new ConfigError(nameOf('cache.addresses'), `"${a}" is not host:port`);
  }
  if (new Set(cfg.cache.addresses).size !== cfg.cache.addresses.length) {
    throw new ConfigError(nameOf('cache.addresses'), 'lists a node twice');
  }
  const isHttpUrl = (x: string) => {
    try {
      const u = new URL(x);
      return u.protocol === 'http:' || u.protocol === 'https:';
    } catch {
      return false;
    }
  };
  for (const p of cfg.cluster.peers) {
    if (!isHttpUrl(p))
      throw new ConfigError(nameOf('cluster.peers'), `"${p}" is not an http(s) URL`);
  }
  if (cfg.cluster.advertiseUrl !== '' && !isHttpUrl(cfg.cluster.advertiseUrl)) {
    throw new ConfigError(
      nameOf('cluster.advertise_url'),
      `"${cfg.cluster.advertiseUrl}" is not an http(s) URL`,
    );
  }
  if (cfg.cluster.peersDns !== '') {
    try {
      parsePeersDns(cfg.cluster.peersDns);
    } catch (e) {
      throw new ConfigError(nameOf('cluster.peers_dns'), (e as Error).message);
    }
  }
  try {
    parseDnsServers(cfg.cluster.peersDnsServers);
  } catch (e) {
    throw new ConfigError(nameOf('cluster.peers_dns_servers'), (e as Error).message);
  }
  // The ring accepts two ASCII characters only (as twemproxy): refuse anything else here, with exit 2.
  if (cfg.cache.hashTag !== '' && !/^[\x20-\x7e]{2}$/.test(cfg.cache.hashTag)) {
    throw new ConfigError(
      nameOf('cache.hash_tag'),
      'must be exactly two ASCII characters, such as {}',
    );
  }
  if (cfg.health.timeout > cfg.health.interval) {
    throw new ConfigError(
      nameOf('health.timeout'),
      `must not exceed ${nameOf('health.interval')} (${cfg.health.interval} ms)`,
    );
  }
  // A token that `Authorization: Bearer <token>` cannot carry would lock everyone out silently.
  for (const path of ['admin.token', 'cluster.token'] as const) {
    const tok = path === 'admin.token' ? cfg.admin.token : cfg.cluster.token;
    if (tok !== '' && !/^[\x21-\x7e]+$/.test(tok))
      throw new ConfigError(
        nameOf(path),
        'must be printable ASCII without spaces (it travels as "Authorization: Bearer <token>")',
      );
  }
  const lists = [
    ['cache.allowed_addresses', cfg.cache.allowedAddresses, true],
    ['server.trusted_proxies', cfg.server.trustedProxies, false],
  ] as const;
  for (const [path, list, hosts] of lists) {
    try {
      parseAddressList(list, hosts);
    } catch (e) {
      if (e instanceof AddressListError) throw new ConfigError(nameOf(path), e.message);
      throw e;
    }
  }
  const tlsFiles = [
    ['cache.tls_ca', cfg.cache.tlsCa],
    ['cache.tls_cert', cfg.cache.tlsCert],
    ['cache.tls_key', cfg.cache.tlsKey],
  ] as const;
  for (const [path, file] of tlsFiles) {
    if (file === '') continue;
    if (!cfg.cache.tls)
      throw new ConfigError(nameOf(path), `is set but ${nameOf('cache.tls')} is not true`);
    try {
      readFileSync(file);
    } catch (e) {
      throw new ConfigError(nameOf(path), `cannot read ${file}: ${(e as Error).message}`);
    }
  }
  if ((cfg.cache.tlsCert === '') !== (cfg.cache.tlsKey === '')) {
    const missing = cfg.cache.tlsCert === '' ? 'cache.tls_cert' : 'cache.tls_key';
    throw new ConfigError(nameOf(missing), 'is needed too: a client certificate goes with its key');
  }
  if (cfg.cluster.nodeId === '') cfg.cluster.nodeId = `${hostname()}:${cfg.server.port}`;
}

/** The configuration with secrets replaced, for logs and `/api/v1/config`-style output. */
export function redact(cfg: Config): Config {
  return {
    ...cfg,
    resp: { ...cfg.resp, password: cfg.resp.password ? '(set)' : '' },
    cache: { ...cfg.cache, password: cfg.cache.password ? '(set)' : '' },
    cluster: { ...cfg.cluster, token: cfg.cluster.token ? '(set)' : '' },
    admin: { ...cfg.admin, token: cfg.admin.token ? '(set)' : '' },
  };
}

/** Environment names the proxy reads beside its settings. */
const OTHER_ENV = ['DC_CONFIG'];

/** Levenshtein distance, for "did you mean" on misspelt setting names. */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const sub = (prev[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1);
      cur.push(Math.min(sub, (prev[j] as number) + 1, (cur[j - 1] as number) + 1));
    }
    prev = cur;
  }
  return prev[b.length] as number;
}

/** A `DC_*` environment variable that names no setting, with the closest setting if one is near. */
export interface UnknownEnv {
  name: string;
  suggestion?: string;
}

/** Every `DC_*` variable of `env` that is no setting (a typo such as DC_CACHE_ADRESSES). */
export function unknownEnv(env: NodeJS.ProcessEnv): UnknownEnv[] {
  const known = [
    ...OTHER_ENV,
    ...(SETTINGS as readonly Setting[]).flatMap((s) => [envName(s.path), ...(s.envAliases ?? [])]),
  ];
  const knownSet = new Set(known);
  const out: UnknownEnv[] = [];
  for (const name of Object.keys(env).sort()) {
    if (!name.startsWith('DC_') || knownSet.has(name)) continue;
    let best: string | undefined;
    let bestD = Number.POSITIVE_INFINITY;
    for (const k of known) {
      const d = distance(name, k);
      if (d < bestD) {
        bestD = d;
        best = k;
      }
    }
    // Past a third of the name it is another word, not a typo.
    out.push(
      best !== undefined && bestD <= Math.max(2, Math.floor(name.length / 3))
        ? { name, suggestion: best }
        : { name },
    );
  }
  return out;
}

/** Default of a setting as `--help` and the docs show it. */
function shownDefault(s: Setting): string {
  const d = s.def;
  if (Array.isArray(d)) return d.length > 0 ? d.join(',') : '(none)';
  if (s.kind === 'duration') return formatDuration(d as number);
  if (d === '') return '(empty)';
  return String(d);
}

/** The `--help` text of the server entry, generated from SETTINGS. */
export function usage(program = 'node packages/proxy/dist/main.js'): string {
  const lines = [
    `Usage: ${program} [--config file.yaml] [--<setting> value ...]`,
    '',
    'Runs the dcache proxy. Every setting comes, in order of precedence, from a flag',
    '(--server-port 9000 or --server-port=9000), the environment (DC_SERVER_PORT=9000),',
    'the YAML file given by --config or DC_CONFIG, or its default. Durations: 500ms, 30s,',
    '1m, 1h30m; sizes: 1048576, 512kb, 1mb. Reference: docs/configuration.md.',
    '',
    '  --help, -h       print this text and exit',
    '  --version        print the version and exit',
    '  --config FILE    YAML configuration file (env DC_CONFIG)',
    '',
    'Settings (flag, environment variable, default):',
  ];
  let section = '';
  for (const s of SETTINGS as readonly Setting[]) {
    const sec = s.path.split('.')[0] as string;
    if (sec !== section) {
      lines.push('', `${sec}:`);
      section = sec;
    }
    const values = s.values ? ` (${s.values.join('|')})` : '';
    lines.push(`  --${flagName(s.path)}  ${envName(s.path)}  default ${shownDefault(s)}${values}`);
    lines.push(`      ${s.doc}`);
  }
  lines.push('', 'Exit codes: 0 stopped cleanly, 2 a bad setting, 1 any other failure.');
  return `${lines.join('\n')}\n`;
}
