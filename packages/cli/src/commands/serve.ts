import type { Argv } from 'yargs';
import { command, type Session } from '../context.js';
import { CommandError, EXIT, UsageError } from '../errors.js';

type Proxy = typeof import('@dcache/proxy');

/** Declare every proxy setting as a string flag (`--server-port`), validated by `loadConfig`. */
function settingFlags(b: Argv, proxy: Proxy | undefined): Argv {
  if (!proxy) return b;
  let y = b.option('config', {
    type: 'string',
    describe: 'YAML config file (env DC_CONFIG)',
    group: 'Proxy settings (flags > env > file > defaults):',
  });
  for (const st of proxy.SETTINGS) {
    const def = Array.isArray(st.def)
      ? st.def.join(',')
      : st.kind === 'duration'
        ? proxy.formatDuration(st.def as number)
        : String(st.def);
    y = y.option(proxy.flagName(st.path), {
      type: 'string',
      describe: `${st.doc} (env ${proxy.envName(st.path)})`,
      defaultDescription: 'secret' in st && st.secret ? 'none' : def === '' ? 'none' : def,
      group: 'Proxy settings (flags > env > file > defaults):',
    });
  }
  return y;
}

function loadConfigFrom(
  proxy: Proxy,
  argv: Record<string, unknown>,
  extra: Record<string, unknown> = {},
) {
  const flags: Record<string, unknown> = {};
  for (const st of proxy.SETTINGS) {
    const v = argv[proxy.flagName(st.path)];
    if (v !== undefined) flags[st.path] = v;
  }
  Object.assign(flags, extra);
  const config = typeof argv.config === 'string' ? ['--config', argv.config] : [];
  try {
    return proxy.loadConfig({ argv: config, env: process.env, flags });
  } catch (e) {
    if (e instanceof proxy.ConfigError) throw new CommandError('CONFIG', e.message, EXIT.USAGE);
    throw e;
  }
}

/** `dev` listens on loopback and logs readably unless told otherwise (flag or env). */
function devDefaults(argv: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  if (argv['server-host'] === undefined && !process.env.DC_SERVER_HOST)
    out['server.host'] = '127.0.0.1';
  if (argv['logger-format'] === undefined && !process.env.DC_LOGGER_FORMAT)
    out['logger.format'] = 'pretty';
  return out;
}

/** The proxy runs until a signal: its handlers end the process (exit 0 after draining). */
function forever(): Promise<never> {
  return new Promise<never>(() => {});
}

/** `dcache serve [flags]` and `dcache dev [--nodes 3]`; the proxy module is loaded only if `load`. */
export async function serveCommands(y: Argv, s: Session, load: boolean): Promise<Argv> {
  const proxy: Proxy | undefined = load ? await import('@dcache/proxy') : undefined;
  const need = (): Proxy => {
    if (!proxy) throw new Error('the proxy module is not loaded');
    return proxy;
  };
  let d = command(y, s, {
    command: 'serve',
    describe: 'Run a proxy (same settings as env DC_* / --config; runs until SIGTERM/SIGINT)',
    usage: 'dcache serve [--server-port 8080] [--cache-addresses host:port,...] [...]',
    builder: (b) => settingFlags(b, proxy),
    handler: async (a) => {
      const p = need();
      const config = loadConfigFrom(p, a as Record<string, unknown>);
      await p.run(config);
      return forever();
    },
  });
  d = command(d, s, {
    command: 'dev',
    describe: 'Start N local redis-servers and a proxy over them (like npm start)',
    usage: 'dcache dev [--nodes 3] [--server-port 8080]',
    builder: (b) =>
      settingFlags(b, proxy).option('nodes', {
        type: 'number',
        default: 3,
        describe: 'Local redis-servers to start (1-16)',
      }),
    handler: async (a) => {
      const p = need();
      const n = a.nodes as number;
      if (!Number.isSafeInteger(n) || n < 1 || n > 16)
        throw new UsageError(`--nodes must be an integer from 1 to 16, got ${a.nodes}`);
      // Validate the other settings before starting anything.
      loadConfigFrom(p, a as Record<string, unknown>, { 'cache.addresses': '127.0.0.1:1' });
      let local: Awaited<ReturnType<Proxy['startLocalRedis']>>;
      try {
        local = await p.startLocalRedis(n);
      } catch (e) {
        throw new CommandError('REDIS_MISSING', (e as Error).message);
      }
      const config = loadConfigFrom(p, a as Record<string, unknown>, {
        'cache.addresses': local.addresses.join(','),
        ...devDefaults(a as Record<string, unknown>),
      });
      process.stderr.write(
        `dcache dev: started ${n} local redis-servers: ${local.addresses.join(', ')}\n` +
          `dcache dev: proxy on http://${config.server.host}:${config.server.port}; Ctrl-C stops it and the redis-servers\n`,
      );
      await p.run(config);
      return forever();
    },
  });
  return d;
}
